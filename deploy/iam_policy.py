"""The control plane's IAM policy: deploy/iam-policy.json is the replica template's task-role policy
with placeholders for what the stack fills in. One source, so the two cannot drift.

    python deploy/iam_policy.py --write   # regenerate deploy/iam-policy.json from the template
    python deploy/iam_policy.py           # check: the file equals the template's policy, parliament finds nothing

`make lint` runs the check (the dev extra installs cfn-lint and parliament).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

DEPLOY = Path(__file__).resolve().parent
TEMPLATE = DEPLOY / "cloudformation" / "controlplane-replica.yaml"
POLICY_FILE = DEPLOY / "iam-policy.json"
ROLE, POLICY_NAME = "TaskRole", "controlplane"

# What CloudFormation fills in, as the placeholders a hand-made deployment replaces.
PLACEHOLDERS = {
    "AWS::Partition": "aws",
    "AWS::Region": "REGION",
    "AWS::AccountId": "ACCOUNT_ID",
    "ClusterName": "CLUSTER",
    "EventsQueue.Arn": "arn:aws:sqs:REGION:ACCOUNT_ID:QUEUE_NAME",
}

# parliament checks ARN shapes: it lints the policy as a real account would get it.
EXAMPLE = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "111122223333",
    "ClusterName": "mesh",
    "EventsQueue.Arn": "arn:aws:sqs:us-east-1:111122223333:mesh-ReplicaA-EventsQueue-1A2B3C4D5E6F",
}

# The only finding we accept, and why: ecs:ListTasks names no task or container instance, so AWS
# authorises it on "*"; the ecs:cluster condition keeps it to the cluster (AWS's example policy).
ACCEPTED = {("RESOURCE_STAR", ("ecs:ListTasks",))}


def render(value: Any, names: dict[str, str] = PLACEHOLDERS) -> Any:
    """CloudFormation intrinsics (Ref, Fn::GetAtt, Fn::Sub) -> plain JSON with placeholders."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return names[str(value["Ref"])]
        if set(value) == {"Fn::GetAtt"}:
            attribute = value["Fn::GetAtt"]
            return names[".".join(attribute) if isinstance(attribute, list) else str(attribute)]
        if set(value) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}]+)\}", lambda m: names[m.group(1)], str(value["Fn::Sub"]))
        return {str(key): render(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, names) for item in value]
    return str(value) if isinstance(value, str) else value


def template_policy(template: Path = TEMPLATE, names: dict[str, str] = PLACEHOLDERS) -> dict[str, Any]:
    """The task role's policy document, rendered."""
    from cfnlint.decode import decode

    document, errors = decode(str(template))
    if errors or document is None:
        raise SystemExit(f"{template}: {errors}")
    for policy in document["Resources"][ROLE]["Properties"]["Policies"]:
        if policy["PolicyName"] == POLICY_NAME:
            return render(policy["PolicyDocument"], names)  # type: ignore[no-any-return]
    raise SystemExit(f"{template}: no policy {POLICY_NAME!r} on {ROLE}")


def findings(policy: dict[str, Any]) -> list[str]:
    """parliament's findings on the policy, less the accepted ones."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # parliament imports the deprecated pkg_resources
        from parliament import analyze_policy_string

    result = analyze_policy_string(json.dumps(policy), include_community_auditors=True)
    return [
        f"{f.severity} {f.issue}: {f.detail} {f.location}"
        for f in result.findings
        if (f.issue, tuple(f.detail) if isinstance(f.detail, list) else ()) not in ACCEPTED
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"write {POLICY_FILE.name} from the template")
    args = parser.parse_args(argv)
    policy = template_policy()
    text = json.dumps(policy, indent=2) + "\n"
    if args.write:
        POLICY_FILE.write_text(text)
    problems = findings(template_policy(names=EXAMPLE))
    if POLICY_FILE.read_text() != text:
        problems.append(f"{POLICY_FILE} differs from the {ROLE} policy of {TEMPLATE.name}: run python deploy/iam_policy.py --write")
    for problem in problems:
        print(f"iam: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
