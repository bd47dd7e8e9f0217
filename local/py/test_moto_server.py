"""The emulator patch's own test: with local/moto_server.py's journal in place of moto's
table copies, a DynamoDB transaction is still all or nothing, on a table with a sort key (as
Tidemark's index) and on one without."""

import os
import sys

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import moto_server  # noqa: E402,F401 - applies the patch

# In process, against moto's mock: an endpoint from local/env.sh would send the calls elsewhere.
for name in [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]:
    del os.environ[name]
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")


def create(client, name, sort_key):
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attributes = [{"AttributeName": "pk", "AttributeType": "S"}]
    if sort_key:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attributes.append({"AttributeName": "sk", "AttributeType": "S"})
    client.create_table(TableName=name, KeySchema=keys, AttributeDefinitions=attributes,
                        BillingMode="PAY_PER_REQUEST")


def key(name, sort_key):
    value = {"pk": {"S": name}}
    if sort_key:
        value["sk"] = {"S": "s"}
    return value


def items(client, table):
    return sorted((item["pk"]["S"], item.get("n", {}).get("N")) for item in
                  client.scan(TableName=table, ConsistentRead=True)["Items"])


@mock_aws
def check(sort_key):
    client = boto3.client("dynamodb")
    table = "index"
    create(client, table, sort_key)
    client.put_item(TableName=table, Item={**key("checkpoint", sort_key), "n": {"N": "1"}})
    client.put_item(TableName=table, Item={**key("doomed", sort_key), "n": {"N": "7"}})

    def transact(condition_value):
        client.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": {**key("segment", sort_key), "n": {"N": "5"}},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Delete": {"TableName": table, "Key": key("doomed", sort_key)}},
            {"Update": {"TableName": table, "Key": key("checkpoint", sort_key),
                        "UpdateExpression": "SET n = :new", "ConditionExpression": "n = :old",
                        "ExpressionAttributeValues": {":new": {"N": "2"},
                                                      ":old": {"N": condition_value}}}},
        ])

    before = items(client, table)
    try:
        transact("9")  # the checkpoint moved: the last item fails after the others applied
    except ClientError as error:
        assert error.response["Error"]["Code"] == "TransactionCanceledException", error
    else:
        raise AssertionError("a failed condition must cancel the transaction")
    assert items(client, table) == before, f"rolled back: {items(client, table)} != {before}"

    transact("1")
    assert items(client, table) == [("checkpoint", "2"), ("segment", "5")], items(client, table)


if __name__ == "__main__":
    for sort_key in (True, False):
        check(sort_key)
    print("moto_server: transactions stay all or nothing")
