"""Helpers for the local stack, the demo and the integration tests, using clients that share
no code with Tidemark: confluent-kafka (librdkafka) for Kafka, boto3 for S3 and DynamoDB, and
tidemark_segment.py (written from the format spec) for segments.

Every command prints JSON on stdout and exits non-zero with a message on stderr when it fails.
"""
import argparse
import base64
import json
import os
import random
import sys
import time

import boto3
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import tidemark_segment

TIMESTAMP_TYPES = {0: "NO_TIMESTAMP_TYPE", 1: "CREATE_TIME", 2: "LOG_APPEND_TIME"}


def b64(data):
    return None if data is None else base64.b64encode(data).decode()


def unb64(text):
    return None if text is None else base64.b64decode(text)


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def aws(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint)


def cmd_wait_kafka(args):
    deadline = time.monotonic() + args.timeout
    last = None
    while time.monotonic() < deadline:
        try:
            metadata = AdminClient(_client_config(args)).list_topics(timeout=2)
            print(json.dumps({"brokers": len(metadata.brokers)}))
            return
        except KafkaException as error:
            last = error
            time.sleep(0.2)
    fail(f"kafka at {args.bootstrap} not ready after {args.timeout}s: {last}")


def cmd_create_topic(args):
    admin = AdminClient(_client_config(args))
    config = dict(item.split("=", 1) for item in args.config)
    futures = admin.create_topics([NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1, config=config)])
    try:
        futures[args.topic].result(timeout=30)
    except KafkaException as error:
        if not (args.if_not_exists and error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise
    print(json.dumps({"topic": args.topic, "partitions": args.partitions, "config": config}))


def _produce(bootstrap, topic, records):
    """Produces records (dicts with base64 key/value, headers, partition, timestamp) in order
    and returns them with the offsets and timestamps the broker reported."""
    # message.max.bytes: tests produce records of several MB.
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                         "message.max.bytes": 16 * 1024 * 1024})
    delivered = [None] * len(records)
    errors = []

    def on_delivery(index):
        def callback(error, message):
            if error is not None:
                errors.append(f"record {index}: {error}")
                return
            timestamp_type, timestamp = message.timestamp()
            delivered[index] = dict(
                records[index],
                partition=message.partition(),
                offset=message.offset(),
                timestamp=timestamp,
                timestamp_type=TIMESTAMP_TYPES[timestamp_type],
            )
        return callback

    for index, record in enumerate(records):
        headers = [(key, unb64(value)) for key, value in record.get("headers", [])]
        kwargs = dict(key=unb64(record.get("key")), value=unb64(record.get("value")), headers=headers,
                      partition=record.get("partition", 0), on_delivery=on_delivery(index))
        if record.get("timestamp") is not None:
            kwargs["timestamp"] = record["timestamp"]
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining or errors or any(d is None for d in delivered):
        fail(f"produce to {topic} failed: {remaining} undelivered, errors: {errors[:5]}")
    return delivered


def cmd_produce(args):
    with open(args.records) as source:
        records = json.load(source)
    print(json.dumps(_produce(args.bootstrap, args.topic, records)))


def cmd_produce_payments(args):
    """Realistic payment events: JSON values of ~300 bytes, keys by order, trace headers."""
    rng = random.Random(args.seed)
    start = args.start_ms or int(time.time() * 1000) - args.count * args.spacing_ms
    records = []
    for n in range(args.count):
        order = f"order-{rng.randrange(10**6):06d}"
        value = json.dumps({
            "event": "payment.captured", "order_id": order, "payment_id": f"pay_{rng.getrandbits(64):016x}",
            "amount_minor": rng.randrange(100, 500000), "currency": rng.choice(["EUR", "USD", "GBP"]),
            "merchant": f"m-{rng.randrange(500):03d}", "card": {"brand": rng.choice(["visa", "mc", "amex"]), "last4": f"{rng.randrange(10000):04d}"},
            "captured_at": start + n * args.spacing_ms, "sequence": n,
        }).encode()
        records.append(dict(
            key=b64(order.encode()), value=b64(value), partition=n % args.partitions,
            headers=[["trace-id", b64(f"{rng.getrandbits(64):016x}".encode())], ["source", b64(b"checkout")]],
            timestamp=start + n * args.spacing_ms,
        ))
    delivered = _produce(args.bootstrap, args.topic, records)
    last = {}
    for record in delivered:
        last[record["partition"]] = max(last.get(record["partition"], -1), record["offset"])
    print(json.dumps({"produced": len(delivered), "last_offsets": {str(p): o for p, o in sorted(last.items())}}))


def _read_all(bootstrap, topic, timeout=60):
    """Every record of a topic, from each partition's start to its high watermark."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"tidemark-reader-{time.time_ns()}",
                         "enable.auto.commit": False, "fetch.queue.backoff.ms": 10})
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    if metadata.error is not None:
        fail(f"topic {topic}: {metadata.error}")
    assignments, ends = [], {}
    for partition in metadata.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        if high > low:
            assignments.append(TopicPartition(topic, partition, low))
            ends[partition] = high
    consumer.assign(assignments)
    records, deadline = [], time.monotonic() + timeout
    while ends and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error() is not None:
            fail(f"consume {topic}: {message.error()}")
        timestamp_type, timestamp = message.timestamp()
        records.append(dict(partition=message.partition(), offset=message.offset(), key=b64(message.key()),
                            value=b64(message.value()), timestamp=timestamp, timestamp_type=TIMESTAMP_TYPES[timestamp_type],
                            headers=[[k, b64(v)] for k, v in (message.headers() or [])]))
        if message.offset() + 1 >= ends.get(message.partition(), 0):
            ends.pop(message.partition(), None)
    consumer.close()
    if ends:
        fail(f"consume {topic}: partitions {sorted(ends)} not read to their end within {timeout}s")
    return sorted(records, key=lambda r: (r["partition"], r["offset"]))


def cmd_consume(args):
    """Reads every record of a topic, from each partition's start to its high watermark."""
    print(json.dumps(_read_all(args.bootstrap, args.topic, args.timeout)))


def _segments(s3, kms, bucket, prefix):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))
    for key in keys:
        if key.endswith(".seg.zst"):
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            # Keys are {prefix}/{backup_id}/topics/...; data keys are bound to the backup id.
            backup_id = key.split("/topics/")[0].rsplit("/", 1)[-1]

            def unwrap(wrapped, backup_id=backup_id):
                return kms.decrypt(CiphertextBlob=wrapped,
                                   EncryptionContext={"tidemark:backup-id": backup_id})["Plaintext"]

            yield key, len(data), tidemark_segment.read_segment(data, unwrap)


def cmd_read_segments(args):
    s3 = aws("s3", args.endpoint)
    out = []
    for key, size, (header, records) in _segments(s3, aws("kms", args.endpoint), args.bucket, args.prefix):
        out.append(dict(key=key, stored_bytes=size, header=header, records=[
            dict(r, key=b64(r["key"]), value=b64(r["value"]), headers=[[k, b64(v)] for k, v in r["headers"]])
            for r in records]))
    print(json.dumps(out))


def _checkpoints(dynamodb, table, backup_id):
    items = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        items.extend(page["Items"])
    return [i for i in items if i["sk"]["S"] == "checkpoint" and i["backup_id"]["S"] == backup_id]


def _generation_suffix(item):
    generation = int(item.get("generation", {"N": "0"})["N"])
    return f"#g{generation}" if generation else ""


def cmd_wait_checkpoints(args):
    """Waits until every partition in --expect (topic:partition=next_offset, or
    topic#gN:partition=next_offset for generation N > 0 of a recreated topic) is backed up."""
    dynamodb = aws("dynamodb", args.endpoint)
    expected = {}
    for item in args.expect:
        target, next_offset = item.split("=")
        expected[target] = int(next_offset)
    deadline = time.monotonic() + args.timeout
    reached = {}
    while time.monotonic() < deadline:
        reached = {f"{i['topic']['S']}{_generation_suffix(i)}:{i['partition']['N']}":
                   int(i["next_offset"]["N"])
                   for i in _checkpoints(dynamodb, args.table, args.backup_id)}
        if all(reached.get(t, -1) >= n for t, n in expected.items()):
            print(json.dumps(reached))
            return
        time.sleep(0.25)
    fail(f"checkpoints not reached after {args.timeout}s: expected {expected}, have {reached}")


def _client_config(args):
    """librdkafka settings for the test brokers: plaintext, TLS, or SCRAM over TLS."""
    config = {"bootstrap.servers": args.bootstrap}
    if getattr(args, "ca", None):
        config.update({"security.protocol": "SSL", "ssl.ca.location": args.ca})
    if getattr(args, "username", None):
        config.update({"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                       "sasl.username": args.username, "sasl.password": args.password})
    return config


def cmd_describe_topic_configs(args):
    from confluent_kafka.admin import ConfigResource
    admin = AdminClient(_client_config(args))
    resource = ConfigResource(ConfigResource.Type.TOPIC, args.topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    print(json.dumps({name: entry.value for name, entry in configs.items()}))


def cmd_delete_topic(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    if args.if_exists and args.topic not in admin.list_topics(timeout=10).topics:
        print(json.dumps({"deleted": None}))
        return
    admin.delete_topics([args.topic])[args.topic].result(timeout=30)
    # Deletion is asynchronous on some brokers: wait until the name is free again.
    deadline = time.monotonic() + 30
    while args.topic in admin.list_topics(timeout=5).topics:
        if time.monotonic() > deadline:
            fail(f"topic {args.topic} still listed 30 s after deletion")
        time.sleep(0.1)
    print(json.dumps({"deleted": args.topic}))


def cmd_list_topics(args):
    admin = AdminClient(_client_config(args))
    print(json.dumps(sorted(admin.list_topics(timeout=10).topics)))


def cmd_commit_offsets(args):
    """Commits offsets for a group from outside it (the group has no members)."""
    offsets = [TopicPartition(args.topic, int(p), int(o)) for p, o in (item.split("=", 1) for item in args.offset)]
    consumer = Consumer({**_client_config(args), "group.id": args.group, "enable.auto.commit": False})
    committed = consumer.commit(offsets=offsets, asynchronous=False)
    consumer.close()
    print(json.dumps({"group": args.group, "committed": {str(tp.partition): tp.offset for tp in committed}}))


def cmd_join_group(args):
    """Joins a group and holds its assignment without committing, until stdin closes."""
    consumer = Consumer({**_client_config(args), "group.id": args.group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([args.topic])
    deadline = time.monotonic() + 60
    while not consumer.assignment():
        if time.monotonic() > deadline:
            fail(f"no assignment for group {args.group} within 60 s")
        consumer.poll(0.1)
    print(json.dumps({"group": args.group, "assigned": len(consumer.assignment())}), flush=True)
    sys.stdin.read()  # keeps polling off: the member stays until the test closes stdin
    consumer.close()


def cmd_make_groups(args):
    """Commits offsets for many empty groups: {prefix}-0000 ... with offset g+p on partition p."""
    for g in range(args.count):
        group = f"{args.prefix}-{g:04d}"
        consumer = Consumer({**_client_config(args), "group.id": group, "enable.auto.commit": False})
        consumer.commit(offsets=[TopicPartition(args.topic, p, g + p) for p in range(args.partitions)], asynchronous=False)
        consumer.close()
    print(json.dumps({"groups": args.count}))


def cmd_group_offsets(args):
    """The committed offsets as an independent client reads them."""
    consumer = Consumer({**_client_config(args), "group.id": args.group, "enable.auto.commit": False})
    partitions = [TopicPartition(args.topic, p) for p in range(args.partitions)]
    committed = consumer.committed(partitions, timeout=30)
    consumer.close()
    print(json.dumps({str(tp.partition): tp.offset for tp in committed if tp.offset >= 0}))


def cmd_make_certs(args):
    """A CA, a broker certificate for 127.0.0.1 signed by it, and an unrelated second CA."""
    import datetime
    import ipaddress
    import os
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    os.makedirs(args.dir, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common_name):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def write(file_name, data):
        with open(os.path.join(args.dir, file_name), "wb") as out:
            out.write(data)

    def make_ca(common_name):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(common_name)).issuer_name(name(common_name))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        return key, cert

    ca_key, ca_cert = make_ca("tidemark test CA")
    _, other_cert = make_ca("unrelated CA")
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca_cert.subject)
                   .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                               x509.DNSName("localhost")]), critical=False)
                   .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    write("ca.pem", ca_cert.public_bytes(pem))
    write("other-ca.pem", other_cert.public_bytes(pem))
    write("broker.pem", server_cert.public_bytes(pem))
    write("broker.key", server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    print(json.dumps({"dir": args.dir}))


def cmd_create_secret(args):
    arn = aws("secretsmanager", args.endpoint).create_secret(Name=args.name, SecretString=args.value)["ARN"]
    print(json.dumps({"arn": arn}))


def cmd_sign_msk_iam(args):
    """The MSK IAM token's signature as botocore computes it, as AWS's Python signer does."""
    import datetime
    from unittest import mock
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    at = datetime.datetime.fromtimestamp(args.unix_seconds, datetime.timezone.utc)
    request = AWSRequest(method="GET", url=f"https://kafka.{args.region}.amazonaws.com/?Action=kafka-cluster%3AConnect")
    credentials = Credentials(args.access_key, args.secret_key, args.session_token)
    with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
        SigV4QueryAuth(credentials, "kafka-cluster", args.region, expires=900).add_auth(request)
    query = request.url.split("?", 1)[1]
    print(json.dumps(dict(pair.split("=", 1) for pair in query.split("&"))))


def cmd_read_snapshot(args):
    import zstandard
    body = aws("s3", args.endpoint).get_object(Bucket=args.bucket, Key=args.key)["Body"].read()
    print(zstandard.ZstdDecompressor().decompressobj().decompress(body).decode())


def cmd_show_snapshot(args):
    """The latest snapshot of a backup, found through the catalog as a restore finds it."""
    import zstandard
    items = aws("dynamodb", args.endpoint).query(
        TableName=args.table, KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"{args.backup_id}#snapshots"}},
        ScanIndexForward=False, Limit=1, ConsistentRead=True)["Items"]
    if not items:
        fail(f"no snapshot indexed for backup {args.backup_id}")
    key = items[0]["key"]["S"]
    body = aws("s3", args.endpoint).get_object(Bucket=args.bucket, Key=key)["Body"].read()
    snapshot = json.loads(zstandard.ZstdDecompressor().decompressobj().decompress(body))
    print(json.dumps({
        "key": key,
        "stored_bytes": len(body),
        "taken_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(snapshot["taken_at_ms"] / 1000))
                    + f".{snapshot['taken_at_ms'] % 1000:03d}Z",
        "groups": {g["group_id"]: {"state": g["state"], "members": len(g["members"]),
                                   "offsets": {f"{o['topic']}:{o['partition']}": o["offset"] for o in g["offsets"]}}
                   for g in snapshot["groups"]},
        "topics": {t["name"]: {"generation": t["generation"], "configs": t["configs"],
                               "log_end": {str(p["partition"]): p["high_watermark"] for p in t["partitions"]}}
                   for t in snapshot["topics"]},
    }, indent=2))


def cmd_produce_garbage(args):
    """What a bad deploy writes: undecodable values, spread over the partitions."""
    records = [dict(key=b64(f"order-{n:06d}".encode()), value=b64(b"\x00GARBAGE" + os.urandom(32)),
                    partition=n % args.partitions) for n in range(args.count)]
    delivered = _produce(args.bootstrap, args.topic, records)
    last = {}
    for record in delivered:
        last[record["partition"]] = max(last.get(record["partition"], -1), record["offset"])
    print(json.dumps({"produced": len(delivered), "last_offsets": {str(p): o for p, o in sorted(last.items())}}))


def cmd_summarize_topic(args):
    """Records per partition of a topic, and how many of them are garbage."""
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"tidemark-reader-{time.time_ns()}",
                         "enable.auto.commit": False})
    metadata = consumer.list_topics(args.topic, timeout=10).topics[args.topic]
    summary = {}
    for partition in sorted(metadata.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(args.topic, partition), timeout=10)
        summary[str(partition)] = high - low
    consumer.close()
    records = _read_all(args.bootstrap, args.topic)
    garbage = sum(1 for r in records if r["value"] and base64.b64decode(r["value"]).startswith(b"\x00GARBAGE"))
    print(json.dumps({"topic": args.topic, "records_per_partition": summary, "garbage_records": garbage}))


def cmd_create_machines(args):
    """Creates the offset-reset, restore, validation, drill and erasure state machines from the
    repository's ASL files, with the ARNs filled in as SAM and Terraform fill them in; prints the
    machine ARNs."""
    sfn = aws("stepfunctions", args.endpoint)
    arn = lambda name: f"arn:aws:lambda:{os.environ.get('AWS_REGION', 'us-east-1')}:000000000000:function:{name}"
    role = "arn:aws:iam::000000000000:role/tidemark-state-machine"
    with open(os.path.join(args.definitions, "offset-reset.asl.json")) as source:
        definition = source.read().replace("${OffsetResetFunctionArn}", arn(args.offset_reset))
    offset_reset = sfn.create_state_machine(name=f"tidemark-offset-reset-{time.time_ns()}", definition=definition,
                                            roleArn=role)["stateMachineArn"]
    with open(os.path.join(args.definitions, "restore.asl.json")) as source:
        definition = source.read().replace("${RestoreCoordinatorArn}", arn(args.coordinator)) \
                                  .replace("${RestorePartitionArn}", arn(args.partition)) \
                                  .replace("${OffsetResetFunctionArn}", arn(args.offset_reset)) \
                                  .replace("${OffsetResetStateMachineArn}", offset_reset)
    restore = sfn.create_state_machine(name=f"tidemark-restore-{time.time_ns()}", definition=definition,
                                       roleArn=role)["stateMachineArn"]
    with open(os.path.join(args.definitions, "validation.asl.json")) as source:
        definition = source.read().replace("${ValidatorFunctionArn}", arn(args.validator))
    validation = sfn.create_state_machine(name=f"tidemark-validation-{time.time_ns()}", definition=definition,
                                          roleArn=role)["stateMachineArn"]
    with open(os.path.join(args.definitions, "drill.asl.json")) as source:
        definition = source.read().replace("${DrillFunctionArn}", arn(args.drill)) \
                                  .replace("${RestoreStateMachineArn}", restore)
    drill = sfn.create_state_machine(name=f"tidemark-drill-{time.time_ns()}", definition=definition,
                                     roleArn=role)["stateMachineArn"]
    with open(os.path.join(args.definitions, "erasure.asl.json")) as source:
        definition = source.read().replace("${EraserFunctionArn}", arn(args.eraser))
    erasure = sfn.create_state_machine(name=f"tidemark-erasure-{time.time_ns()}", definition=definition,
                                       roleArn=role)["stateMachineArn"]
    print(json.dumps({"restore": restore, "offset_reset": offset_reset, "validation": validation, "drill": drill,
                      "erasure": erasure}))


def cmd_run_execution(args):
    """Runs one execution of a state machine to its end; prints its states and output (or error
    and cause) and exits 1 unless it succeeded."""
    sfn = aws("stepfunctions", args.endpoint)
    execution = sfn.start_execution(stateMachineArn=args.machine, name=f"{args.name}-{time.strftime('%H%M%S')}-{time.time_ns() % 10**6}",
                                    input=args.input)["executionArn"]
    deadline = time.monotonic() + args.timeout
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        if time.monotonic() > deadline:
            fail(f"the execution is still running after {args.timeout}s")
        time.sleep(0.2)
    events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    states = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    result = {"status": described["status"], "states": states}
    if described["status"] == "SUCCEEDED":
        result["output"] = json.loads(described["output"])
    else:
        result.update(error=described.get("error"), cause=described.get("cause"))
    print(json.dumps(result, indent=2))
    if described["status"] != "SUCCEEDED":
        sys.exit(1)


def cmd_create_storage(args):
    s3, dynamodb = aws("s3", args.endpoint), aws("dynamodb", args.endpoint)
    s3.create_bucket(Bucket=args.bucket)
    dynamodb.create_table(
        TableName=args.table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    print(json.dumps({"bucket": args.bucket, "table": args.table}))


def cmd_invoke(args):
    """Invokes a Lambda function synchronously; prints its response, exits 1 on a function error."""
    response = aws("lambda", args.endpoint).invoke(FunctionName=args.function, Payload=args.payload.encode())
    payload = response["Payload"].read().decode()
    print(payload)
    if response.get("FunctionError"):
        fail(f"{args.function} failed: {payload}")


def cmd_create_kms_key(args):
    key = aws("kms", args.endpoint).create_key(Description=args.description)["KeyMetadata"]
    print(json.dumps({"arn": key["Arn"]}))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name, handler, *arguments):
        sub = commands.add_parser(name)
        for flags, options in arguments:
            sub.add_argument(*flags, **options)
        sub.set_defaults(handler=handler)

    bootstrap = (["--bootstrap"], dict(required=True))
    endpoint = (["--endpoint"], dict(required=True))
    topic = (["--topic"], dict(required=True))
    security = ((["--ca"], dict()), (["--username"], dict()), (["--password"], dict()))
    command("wait-kafka", cmd_wait_kafka, bootstrap, (["--timeout"], dict(type=float, default=60)), *security)
    command("create-topic", cmd_create_topic, bootstrap, topic, (["--partitions"], dict(type=int, default=1)),
            (["--config"], dict(action="append", default=[])), (["--if-not-exists"], dict(action="store_true")), *security)
    command("produce", cmd_produce, bootstrap, topic, (["--records"], dict(required=True)))
    command("produce-payments", cmd_produce_payments, bootstrap, topic, (["--count"], dict(type=int, default=1000)),
            (["--partitions"], dict(type=int, default=1)), (["--seed"], dict(type=int, default=1429)),
            (["--start-ms"], dict(type=int)), (["--spacing-ms"], dict(type=int, default=100)))
    command("consume", cmd_consume, bootstrap, topic, (["--timeout"], dict(type=float, default=60)))
    command("read-segments", cmd_read_segments, endpoint, (["--bucket"], dict(required=True)), (["--prefix"], dict(default="")))
    command("wait-checkpoints", cmd_wait_checkpoints, endpoint, (["--table"], dict(required=True)),
            (["--backup-id"], dict(required=True)), (["--expect"], dict(action="append", required=True)),
            (["--timeout"], dict(type=float, default=120)))
    command("create-storage", cmd_create_storage, endpoint, (["--bucket"], dict(required=True)), (["--table"], dict(required=True)))
    command("create-kms-key", cmd_create_kms_key, endpoint, (["--description"], dict(default="tidemark")))
    command("invoke", cmd_invoke, endpoint, (["--function"], dict(required=True)), (["--payload"], dict(default="{}")))
    group = (["--group"], dict(required=True))
    command("describe-topic-configs", cmd_describe_topic_configs, bootstrap, topic, *security)
    command("delete-topic", cmd_delete_topic, bootstrap, topic, (["--if-exists"], dict(action="store_true")))
    command("list-topics", cmd_list_topics, bootstrap, *security)
    command("commit-offsets", cmd_commit_offsets, bootstrap, topic, group, (["--offset"], dict(action="append", required=True)),
            *security)
    command("join-group", cmd_join_group, bootstrap, topic, group, *security)
    command("make-groups", cmd_make_groups, bootstrap, topic, (["--prefix"], dict(required=True)),
            (["--count"], dict(type=int, required=True)), (["--partitions"], dict(type=int, default=1)), *security)
    command("group-offsets", cmd_group_offsets, bootstrap, topic, group, (["--partitions"], dict(type=int, default=1)),
            *security)
    command("produce-garbage", cmd_produce_garbage, bootstrap, topic, (["--count"], dict(type=int, default=1000)),
            (["--partitions"], dict(type=int, default=1)))
    command("summarize-topic", cmd_summarize_topic, bootstrap, topic)
    command("create-machines", cmd_create_machines, endpoint, (["--definitions"], dict(required=True)),
            (["--coordinator"], dict(required=True)), (["--partition"], dict(required=True)),
            (["--offset-reset"], dict(required=True)), (["--validator"], dict(required=True)),
            (["--drill"], dict(required=True)), (["--eraser"], dict(required=True)))
    command("run-execution", cmd_run_execution, endpoint, (["--machine"], dict(required=True)),
            (["--name"], dict(default="run")), (["--input"], dict(required=True)),
            (["--timeout"], dict(type=float, default=300)))
    command("make-certs", cmd_make_certs, (["--dir"], dict(required=True)))
    command("create-secret", cmd_create_secret, endpoint, (["--name"], dict(required=True)), (["--value"], dict(required=True)))
    command("sign-msk-iam", cmd_sign_msk_iam, (["--region"], dict(required=True)), (["--access-key"], dict(required=True)),
            (["--secret-key"], dict(required=True)), (["--session-token"], dict()),
            (["--unix-seconds"], dict(type=int, required=True)))
    command("show-snapshot", cmd_show_snapshot, endpoint, (["--bucket"], dict(required=True)),
            (["--table"], dict(required=True)), (["--backup-id"], dict(required=True)))
    command("read-snapshot", cmd_read_snapshot, endpoint, (["--bucket"], dict(required=True)), (["--key"], dict(required=True)))
    args = parser.parse_args()
    args.handler(args)


if __name__ == "__main__":
    main()
