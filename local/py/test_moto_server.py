"""The emulator patches' own tests: with local/moto_server.py's journal in place of moto's
table copies, a DynamoDB transaction is still all or nothing, on a table with a sort key (as
Tidemark's index) and on one without; and DynamoDB's answers written as JSON directly are the
answers moto's serializer writes, binary values included."""

import json
import os
import sys

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import moto_server  # noqa: E402 - applies the patches
from moto.dynamodb import responses as dynamodb_responses  # noqa: E402

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


@mock_aws
def answers_match_the_serializer():
    """Every DynamoDB answer the index uses, written both ways: the same JSON, and only the
    table description (timestamps) left to the serializer."""
    direct = dynamodb_responses.DynamoResult.execute_result
    with_model = moto_server._serialize_with_model
    compared, left_to_model = [], []

    def counted(self, context):
        left_to_model.append(context.operation_model.name)
        return with_model(self, context)

    def both(self, context):
        answer = direct(self, context)
        status, _, body = with_model(self, context)
        assert answer[0] == status, (context.operation_model.name, answer[0], status)
        assert json.loads(answer[2]) == json.loads(body), (context.operation_model.name,
                                                            answer[2], body)
        compared.append(context.operation_model.name)
        return answer

    moto_server._serialize_with_model = counted
    dynamodb_responses.DynamoResult.execute_result = both
    try:
        client = boto3.client("dynamodb")
        create(client, "index", sort_key=True)
        client.describe_table(TableName="index")
        every_type = {"b": {"B": b"\x00\xff"}, "bs": {"BS": [b"\x01"]}, "n": {"N": "1.50"},
                      "ns": {"NS": ["1", "2"]}, "ss": {"SS": ["q"]}, "t": {"S": "\u00e9\"\n"},
                      "l": {"L": [{"NULL": True}, {"BOOL": False}]},
                      "m": {"M": {"x": {"N": "-3"}}}}
        for n in range(3):
            client.put_item(TableName="index",
                            Item={"pk": {"S": "p"}, "sk": {"S": f"segment#{n}"}, **every_type})
        client.get_item(TableName="index", Key={"pk": {"S": "p"}, "sk": {"S": "segment#0"}},
                        ConsistentRead=True)
        page = client.query(TableName="index", ConsistentRead=True, Limit=2,
                            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                            ExpressionAttributeValues={":pk": {"S": "p"},
                                                       ":prefix": {"S": "segment#"}})
        assert "LastEvaluatedKey" in page and len(page["Items"]) == 2, page
        assert page["Items"][0]["b"] == {"B": b"\x00\xff"}, page["Items"][0]
        client.scan(TableName="index")
        client.update_item(TableName="index", Key={"pk": {"S": "p"}, "sk": {"S": "segment#1"}},
                           UpdateExpression="SET n = :n", ReturnValues="ALL_NEW",
                           ExpressionAttributeValues={":n": {"N": "2"}})
        client.transact_write_items(TransactItems=[
            {"Delete": {"TableName": "index",
                        "Key": {"pk": {"S": "p"}, "sk": {"S": "segment#2"}}}}])
    finally:
        dynamodb_responses.DynamoResult.execute_result = direct
        moto_server._serialize_with_model = with_model
    for operation in ("PutItem", "GetItem", "Query", "Scan", "UpdateItem"):
        assert operation in compared, (operation, compared)
        assert operation not in left_to_model, (operation, left_to_model)
    assert "DescribeTable" in left_to_model, left_to_model


if __name__ == "__main__":
    for sort_key in (True, False):
        check(sort_key)
    print("moto_server: transactions stay all or nothing")
    answers_match_the_serializer()
    print("moto_server: DynamoDB answers written directly match the serializer's")
