"""The SNS API of the local SNS (query protocol: form parameters in, XML out), as boto3's
``sns`` client speaks it: CreateTopic, ListTopics, DeleteTopic, Subscribe, Unsubscribe,
ListSubscriptionsByTopic, Get/SetSubscriptionAttributes, Publish."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from xml.sax.saxutils import escape

from controlplane.localecs.sns import InvalidParameter, LocalSns, Subscription

VERSION = "2010-03-31"
NAMESPACE = f"http://sns.amazonaws.com/doc/{VERSION}/"

Params = Mapping[str, Sequence[str]]


def is_sns(params: Params) -> bool:
    return params.get("Version", [""])[0] == VERSION


def _one(params: Params, name: str, required: bool = True) -> str:
    values = params.get(name)
    if not values or values[0] == "":
        if required:
            raise InvalidParameter(f"Invalid parameter: {name} is required")
        return ""
    return values[0]


def _entries(params: Params, prefix: str) -> dict[str, str]:
    """A query-protocol map: ``prefix.entry.N.key`` / ``prefix.entry.N.value``."""
    found: dict[str, str] = {}
    index = 1
    while f"{prefix}.entry.{index}.key" in params:
        found[params[f"{prefix}.entry.{index}.key"][0]] = params.get(f"{prefix}.entry.{index}.value", [""])[0]
        index += 1
    return found


def _tag(name: str, value: str) -> str:
    return f"<{name}>{escape(value)}</{name}>"


def _subscription_xml(s: Subscription) -> str:
    return (
        "<member>"
        + _tag("SubscriptionArn", s.arn)
        + _tag("Owner", s.topic_arn.split(":")[4])
        + _tag("Protocol", "sqs")
        + _tag("Endpoint", s.queue.arn)
        + _tag("TopicArn", s.topic_arn)
        + "</member>"
    )


def create_topic(sns: LocalSns, params: Params) -> str:
    return _tag("TopicArn", sns.create_topic(_one(params, "Name")).arn)


def list_topics(sns: LocalSns, params: Params) -> str:
    members = "".join(f"<member>{_tag('TopicArn', t.arn)}</member>" for t in sns.topics())
    return f"<Topics>{members}</Topics>"


def delete_topic(sns: LocalSns, params: Params) -> str:
    sns.delete_topic(_one(params, "TopicArn"))
    return ""


def subscribe(sns: LocalSns, params: Params) -> str:
    subscription = sns.subscribe(
        _one(params, "TopicArn"), _one(params, "Protocol"), _one(params, "Endpoint"), _entries(params, "Attributes")
    )
    return _tag("SubscriptionArn", subscription.arn)


def unsubscribe(sns: LocalSns, params: Params) -> str:
    sns.unsubscribe(_one(params, "SubscriptionArn"))
    return ""


def list_subscriptions_by_topic(sns: LocalSns, params: Params) -> str:
    topic = sns.topic(_one(params, "TopicArn"))
    return "<Subscriptions>" + "".join(_subscription_xml(s) for s in topic.subscriptions) + "</Subscriptions>"


def get_subscription_attributes(sns: LocalSns, params: Params) -> str:
    s = sns.subscription(_one(params, "SubscriptionArn"))
    attributes = {
        "SubscriptionArn": s.arn,
        "TopicArn": s.topic_arn,
        "Protocol": "sqs",
        "Endpoint": s.queue.arn,
        "Owner": s.topic_arn.split(":")[4],
        "ConfirmationWasAuthenticated": "true",
        "PendingConfirmation": "false",
        "RawMessageDelivery": "false",
        **s.attributes,
    }
    entries = "".join(f"<entry>{_tag('key', k)}{_tag('value', v)}</entry>" for k, v in attributes.items())
    return f"<Attributes>{entries}</Attributes>"


def set_subscription_attributes(sns: LocalSns, params: Params) -> str:
    sns.set_subscription_attribute(
        _one(params, "SubscriptionArn"), _one(params, "AttributeName"), _one(params, "AttributeValue", required=False)
    )
    return ""


def publish(sns: LocalSns, params: Params) -> str:
    subject = _one(params, "Subject", required=False) or None
    return _tag("MessageId", sns.publish(_one(params, "TopicArn"), _one(params, "Message"), subject))


OPERATIONS: dict[str, Callable[[LocalSns, Params], str]] = {
    "CreateTopic": create_topic,
    "ListTopics": list_topics,
    "DeleteTopic": delete_topic,
    "Subscribe": subscribe,
    "Unsubscribe": unsubscribe,
    "ListSubscriptionsByTopic": list_subscriptions_by_topic,
    "GetSubscriptionAttributes": get_subscription_attributes,
    "SetSubscriptionAttributes": set_subscription_attributes,
    "Publish": publish,
}


def handle(sns: LocalSns, params: Params) -> str:
    """The XML response body of one SNS call; SnsError (or SqsError) for a failure."""
    action = params.get("Action", [""])[0]
    operation = OPERATIONS.get(action)
    if operation is None:
        raise InvalidParameter(f"The local SNS does not support action {action!r}")
    result = operation(sns, params)
    return (
        f'<{action}Response xmlns="{NAMESPACE}"><{action}Result>{result}</{action}Result>'
        f"<ResponseMetadata>{_tag('RequestId', secrets.token_hex(16))}</ResponseMetadata></{action}Response>"
    )


def error_xml(code: str, message: str, fault: str = "Sender") -> str:
    """SNS's error body: ``<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>``."""
    return (
        f'<ErrorResponse xmlns="{NAMESPACE}"><Error>{_tag("Type", fault)}{_tag("Code", code)}'
        f"{_tag('Message', message)}</Error>{_tag('RequestId', secrets.token_hex(16))}</ErrorResponse>"
    )
