"""The AWS emulator (moto's server) with two gaps closed.

1. Its Step Functions interpreter passes `states:startExecution` parameters to boto
   unconverted and returns boto's field names, so a definition written for AWS
   (`StateMachineArn`, `Input`, `Name` in; `Output`, `Status`, `Error`, `Cause` out) fails with
   a KeyError. AWS, and LocalStack whose interpreter moto ported, convert between the API's
   field names and boto's; this does the same for that one integration, which the restore
   uses to run the offset-reset state machine as a child execution.
2. Its DynamoDB TransactWriteItems deep-copies every table it touches, once per item, to roll
   back a failed transaction: each backup checkpoint cost time in proportion to the whole
   index, and a 1 GB backup spent most of its time there (docs/benchmarks.md). This keeps the
   items the transaction names as they were and puts exactly those back on failure: the same
   all-or-nothing outcome, in time proportional to the transaction.

3. Its DynamoDB answers go through moto's generic response serializer, which walks the API
   model for every attribute value: a Query of 215 index entries took 0.26-0.35 s, where the
   service answers in milliseconds, and every restore waited that long per partition
   (docs/benchmarks.md). DynamoDB's results are already in the wire format (attribute values
   as JSON, binary ones as bytes): they are written as JSON directly, binary values in base64
   as the serializer writes them. A result holding anything else (a table description's
   timestamps) still goes through the serializer.

Run as moto_server: python local/moto_server.py -H HOST -p PORT
"""

import base64
import copy
import datetime
import json
import sys

from moto.dynamodb import models as dynamodb_models
from moto.dynamodb import responses as dynamodb_responses
from moto.dynamodb.models.table import Table
from moto.server import main
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_sfn as sfn_task,
)


def _boto_name(name):
    return name[:1].lower() + name[1:]


def _api_name(name):
    return name[:1].upper() + name[1:]


_original_normalise_parameters = sfn_task.StateTaskServiceSfn._normalise_parameters


def _normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):
    _original_normalise_parameters(self, parameters, boto_service_name, service_action_name)
    for key in list(parameters):
        parameters[_boto_name(key)] = parameters.pop(key)


def _normalise_response(self, response, boto_service_name=None, service_action_name=None):
    for key in list(response):
        value = response.pop(key)
        # Step Functions shows the API's timestamps as epoch milliseconds.
        if isinstance(value, datetime.datetime):
            value = int(value.timestamp() * 1000)
        response[_api_name(key)] = value


sfn_task.StateTaskServiceSfn._normalise_parameters = _normalise_parameters
sfn_task.StateTaskServiceSfn._normalise_response = _normalise_response

class _CopyKeepingTables:
    """`copy` for moto's DynamoDB backend module, except that a table is not deep-copied:
    `_transact_write_items` journals the items instead."""

    def deepcopy(self, value, memo=None):
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def __getattr__(self, name):
        return getattr(copy, name)


_original_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def _transact_write_items(self, transact_items):
    journal = []
    for item in transact_items:
        _, op = next(iter(item.items()))
        table = self.tables.get(op.get("TableName"))
        if table is None:
            continue
        try:
            key = op.get("Key") or {
                attr: op["Item"][attr]
                for attr in (table.hash_key_attr, table.range_key_attr)
                if attr is not None
            }
            hash_key, range_key = self.get_keys_value(table, key)
            before = table.get_item(hash_key, range_key)
        except Exception:  # noqa: BLE001 - moto refuses this item itself, changing nothing
            continue
        journal.append((table, hash_key, range_key, copy.deepcopy(before)))
    try:
        return _original_transact_write_items(self, transact_items)
    except Exception:
        for table, hash_key, range_key, before in reversed(journal):
            items, slot = (
                (table.items[hash_key], range_key)
                if range_key is not None
                else (table.items, hash_key)
            )
            if before is None:
                items.pop(slot, None)
            else:
                items[slot] = before
        raise


dynamodb_models.copy = _CopyKeepingTables()
dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items


class _NotWireFormat(TypeError):
    """A value the JSON protocol needs the API model to write."""


def _binary_in_base64(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise _NotWireFormat(type(value).__name__)


_serialize_with_model = dynamodb_responses.DynamoResult.execute_result


def _dynamodb_result_as_json(self, context):
    try:
        body = json.dumps(self.result, default=_binary_in_base64)
    except _NotWireFormat:
        return _serialize_with_model(self, context)
    return 200, {"Content-Type": "application/x-amz-json-1.0"}, body


dynamodb_responses.DynamoResult.execute_result = _dynamodb_result_as_json

if __name__ == "__main__":
    sys.exit(main())
