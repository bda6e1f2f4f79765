"""Drives the registry with Confluent's own Python client (confluent-kafka 2.16), as producers do.

Run by tests/confluent_client.rs (ignored by default: it needs `pip install
"confluent-kafka[avro,schemaregistry]"`). argv[1] is the registry's base URL, with a path
prefix. The last line printed is a message framed by AvroSerializer, in hex, which the Rust
side decodes with the registry's schema cache as the landing would.
"""

import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

V1 = '{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}'
V2 = ('{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},'
      '{"name":"qty","type":"int","default":1}]}')
V2_NO_DEFAULT = ('{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},'
                 '{"name":"qty","type":"int"}]}')


def expect_error(call, status, code, names):
    try:
        call()
    except SchemaRegistryError as e:
        assert (e.http_status_code, e.error_code) == (status, code), e
        assert names in e.error_message, e.error_message
        return
    raise AssertionError(f"expected error {code}")


def main(url):
    client = SchemaRegistryClient({"url": url})
    assert client.register_schema("orders-value", Schema(V1, "AVRO")) == 1
    full = client.register_schema_full_response("orders-value", Schema(V2, "AVRO"))
    assert (full.schema_id, full.version, full.subject) == (2, 2, "orders-value"), full
    assert client.get_schema(2).schema_str == V2
    assert client.get_schema(1, subject_name="orders-value").schema_str == V1
    assert client.get_subjects() == ["orders-value"]
    assert client.get_versions("orders-value") == [1, 2]
    latest = client.get_latest_version("orders-value")
    assert (latest.schema_id, latest.version) == (2, 2), latest
    assert client.get_version("orders-value", 1).schema.schema_str == V1
    found = client.lookup_schema("orders-value", Schema(V1, "AVRO"))
    assert (found.schema_id, found.version) == (1, 1), found
    assert [(v.subject, v.version) for v in client.get_schema_versions(2)] == [("orders-value", 2)]

    assert client.test_compatibility("orders-value", Schema(V2, "AVRO")) is True
    assert client.test_compatibility("orders-value", Schema(V2_NO_DEFAULT, "AVRO"), version=1) is False
    assert client.test_compatibility("orders-value", Schema(V2_NO_DEFAULT, "AVRO"), verbose=True) is True
    expect_error(
        lambda: client.register_schema("orders-value", Schema(V2_NO_DEFAULT.replace("qty", "note"), "AVRO")),
        409, 409, "`note`")
    expect_error(lambda: client.get_version("nope", 1), 404, 40401, "`nope`")
    expect_error(lambda: client.get_schema(99), 404, 40403, "99")
    expect_error(lambda: client.register_schema("x", Schema("{", "AVRO")), 422, 42201, "Avro")

    assert client.get_compatibility() == "BACKWARD"
    client.set_compatibility(level="full")
    client.set_compatibility("orders-value", "NONE")
    assert client.get_compatibility("orders-value") == "NONE"
    assert client.get_config().compatibility_level.value == "FULL"
    assert client.delete_config("orders-value").compatibility_level.value == "NONE"
    client.set_compatibility(level="BACKWARD")

    # The serializer registers under the topic's subject and frames with the id.
    ctx = SerializationContext("returns", MessageField.VALUE)
    serialize = AvroSerializer(client, V2)
    framed = serialize({"id": "o-1", "qty": 3}, ctx)
    assert framed[0] == 0 and int.from_bytes(framed[1:5], "big") == 2, framed
    assert client.get_versions("returns-value") == [1]
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": url}))
    assert deserialize(framed, ctx) == {"id": "o-1", "qty": 3}

    assert client.delete_version("returns-value", 1) == 1
    assert client.delete_subject("returns-value", permanent=True) == [1]
    assert client.get_subjects() == ["orders-value"]
    print(framed.hex())


if __name__ == "__main__":
    main(sys.argv[1])
