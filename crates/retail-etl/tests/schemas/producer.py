"""A registry-aware producer, as a shop would run it: Confluent's Python client (confluent-kafka
2.16.1 with the `avro` and `schemaregistry` extras) against the binary's built-in schema
registry and the test's Kafka broker.

Run by tests/schemas.rs. argv[1] is the registry's base URL (with its `/schema-registry` path),
argv[2] the bootstrap servers. stdin is a JSON object: `orders`, a list of
`{"as": "avro1"|"avro2"|"json1", "event_id", "order_id", "amount", "amount_json", "channel", "ts"}`,
and `v3_event_id`, the event id of the order of version 3.

It registers its own order schemas (the shapes of versions 1 and 2, written as it likes: key
order and spacing are its own), produces every order (Avro of version 1, Avro of version 2,
plain JSON of version 1) TWICE, as a client retrying after a timeout would, then one record
framed with a schema id the registry never gave and one JSON order of version 3. It also
tries an incompatible change to `orders-value` and expects Confluent's 409. The last line on
stdout is a JSON summary.
"""

import json
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

TOPIC = "orders"
SUBJECT = "orders-value"
UNKNOWN_ID = 999999


def order_schema(version, amount_type=("null", "string")):
    """The order's record in the producer's own spelling: keys in another order than the
    registry's built-in text, `"type"` objects where a name would do."""
    fields = [
        {"default": "order", "type": "string", "name": "type"},
        {"name": "schema_version", "default": version, "type": {"type": "int"}},
        {"type": ["null", "string"], "name": "event_id", "default": None},
        {"name": "ts", "type": {"logicalType": "timestamp-millis", "type": "long"}},
        {"name": "source", "type": ["null", "string"], "default": None},
        {"name": "order_id", "type": "string"},
        {"name": "status", "type": "string"},
        {"name": "store_id", "type": ["null", "long"], "default": None},
        {"name": "amount", "type": list(amount_type), "default": None},
        {"name": "currency", "type": ["null", "string"], "default": None},
        {"name": "customer_id", "type": ["null", "string"], "default": None},
    ]
    if version >= 2:
        fields.append({"name": "channel", "type": "string", "default": "web"})
    return json.dumps({"namespace": "retail.events", "name": "Order", "type": "record", "fields": fields},
                      indent=1)


V1 = order_schema(1)
V2 = order_schema(2)
# Amount as a number: a reader of this version could not read the orders already written with
# text amounts, so BACKWARD refuses it.
V3_INCOMPATIBLE = order_schema(2, amount_type=("null", "long"))


def avro_record(o, version):
    record = {
        "type": "order",
        "schema_version": version,
        "event_id": o["event_id"],
        "ts": o["ts"],
        "source": "py-avro",
        "order_id": o["order_id"],
        "status": "created",
        "store_id": 3,
        "amount": o["amount"],
        "currency": "EUR",
        "customer_id": "c-" + o["order_id"],
    }
    if version >= 2:
        record["channel"] = o["channel"]
    return record


def json_record(o):
    # Money as the producer wrote it: text or a JSON number, the digits kept either way.
    return ('{"type":"order","schema_version":1,"event_id":"%s","ts":%d,"source":"py-json",'
            '"order_id":"%s","status":"paid","store_id":4,"amount":%s,"currency":"EUR"}'
            % (o["event_id"], o["ts"], o["order_id"], o["amount_json"])).encode()


def main(url, bootstrap):
    given = json.loads(sys.stdin.read())
    orders = given["orders"]
    client = SchemaRegistryClient({"url": url})
    ctx = SerializationContext(TOPIC, MessageField.VALUE)
    # Registers its writer schema on first use (auto.register.schemas), as a shop's producer does.
    v1 = AvroSerializer(client, V1, conf={"auto.register.schemas": True})
    v2 = AvroSerializer(client, V2, conf={"auto.register.schemas": True})

    values = []
    for o in orders:
        if o["as"] == "avro1":
            value = v1(avro_record(o, 1), ctx)
        elif o["as"] == "avro2":
            value = v2(avro_record(o, 2), ctx)
        else:
            value = json_record(o)
        values.append((o["order_id"].encode(), value))

    ids = {
        "v1": client.register_schema(SUBJECT, Schema(V1, "AVRO")),
        "v2": client.register_schema(SUBJECT, Schema(V2, "AVRO")),
    }
    framed_ids = sorted({int.from_bytes(v[1:5], "big") for _, v in values if v[:1] == b"\x00"})
    builtin = {f"v{n}": client.get_version(SUBJECT, n).schema_id for n in (1, 2)}

    refusal = None
    try:
        client.register_schema(SUBJECT, Schema(V3_INCOMPATIBLE, "AVRO"))
    except SchemaRegistryError as e:
        refusal = {"http_status_code": e.http_status_code, "error_code": e.error_code,
                   "message": e.error_message}
    versions = client.get_versions(SUBJECT)

    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                  "enable.idempotence": True})
    failed = []

    def done(err, msg):
        if err is not None:
            failed.append(str(err))

    for _ in range(2):
        for key, value in values:
            p.produce(TOPIC, key=key, value=value, on_delivery=done)
            p.poll(0)
    garbage = b"\x00" + UNKNOWN_ID.to_bytes(4, "big") + b"\x02not avro of any schema here"
    p.produce(TOPIC, key=b"bad-schema", value=garbage, on_delivery=done)
    v3 = ('{"type":"order","schema_version":3,"event_id":"%s","ts":1723456789000,'
          '"order_id":"o-v3","status":"created"}' % given["v3_event_id"]).encode()
    p.produce(TOPIC, key=b"o-v3", value=v3, on_delivery=done)
    left = p.flush(60)
    if failed or left:
        sys.exit(f"delivery failed: {failed[:3]}, {left} left")

    print(json.dumps({"registered": ids, "builtin": builtin, "framed_ids": framed_ids,
                      "versions": versions, "refusal": refusal, "produced": 2 * len(values) + 2}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
