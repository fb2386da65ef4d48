"""Discovery: read ECS through boto3 and emit an immutable view of each cluster."""
