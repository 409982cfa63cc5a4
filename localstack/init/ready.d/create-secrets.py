#!/usr/bin/env python3
"""Create the local Secrets Manager secrets (docs/configuration.md), idempotently.

LocalStack runs this file as a ready.d init hook; `scripts/services up` runs the
same file with the tools venv's python against moto_server. An existing secret
is left in place with its value brought back to the one below.
"""

import json
import os
import sys

import boto3
from botocore.exceptions import ClientError

SECRETS = {
    "order-system/db": {"username": "postgres", "password": "postgres"},
    "order-system/smtp": {"username": "orders", "password": "orders-local"},
    # MSK SASL/SCRAM secrets must be named AmazonMSK_<something>.
    "AmazonMSK_order-system": {"username": "orders", "password": "orders-local"},
}


def main() -> int:
    client = boto3.client(
        "secretsmanager",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        region_name=os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    )
    for name, value in SECRETS.items():
        body = json.dumps(value, separators=(",", ":"))
        try:
            client.create_secret(Name=name, SecretString=body)
            print(f"secret {name}: created")
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceExistsException":
                raise
            current = client.get_secret_value(SecretId=name)["SecretString"]
            if current == body:
                print(f"secret {name}: exists")
            else:
                client.put_secret_value(SecretId=name, SecretString=body)
                print(f"secret {name}: value restored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
