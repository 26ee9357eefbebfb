"""Thin wrappers around the AWS SDK (boto3) for panorama-cli.

- :mod:`panorama_cli.cloud.aws.session` -- sessions, clients and AWS error translation.
- :mod:`panorama_cli.cloud.aws.sts` -- who am I (account id).
- :mod:`panorama_cli.cloud.aws.s3` -- ``s3://`` URIs and managed downloads.

Importing this package (or any of its modules) must not import boto3/botocore: the
CLI's start-up time matters, so every module imports the SDK inside the functions
that need it.
"""
