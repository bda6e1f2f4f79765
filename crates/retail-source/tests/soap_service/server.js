// The real SOAP peer of tests/soap.rs: a payment-confirmation service written with node-soap
// (npm `soap`, pinned in package.json / package-lock.json, installed by scripts/test).
//
// It serves one WSDL operation, GetPayments(AfterTimestamp, AfterPaymentId, Limit), twice:
// SOAP 1.1 at /soap11 and SOAP 1.2 at /soap12. It answers the payments whose key
// (Timestamp, PaymentId) is strictly after (AfterTimestamp, AfterPaymentId), in key order, at
// most Limit of them.
//
// The test drives it over plain HTTP JSON on the same port:
//   POST /control/payments  [{PaymentId, OrderId, Amount, Currency, Status, Timestamp}, ...]
//                           (any field may be left out or hold a bad value on purpose)
//   POST /control/mode      {"mode": "ok" | "fault" | "not_xml" | "http500" | "inclusive" |
//                            "numeric" | "deep_fault" | "auth"}
//                           ('auth': answers 401 unless HTTP Basic auth is retail / pw-0123)
//   GET  /control/stats     {"requests": n, "last": {...the last SOAP request...}}
// Started with `node server.js`; prints `LISTENING <port>` once it serves 127.0.0.1:<port>.
'use strict';

const http = require('http');
const soap = require('soap');

const state = { payments: [], mode: 'ok', requests: 0, last: null };

const wsdl = (soapNs, path) => `<?xml version="1.0" encoding="UTF-8"?>
<definitions name="PaymentService"
  targetNamespace="urn:retail:payments"
  xmlns:tns="urn:retail:payments"
  xmlns:xsd="http://www.w3.org/2001/XMLSchema"
  xmlns:soap="${soapNs}"
  xmlns="http://schemas.xmlsoap.org/wsdl/">
  <types>
    <xsd:schema targetNamespace="urn:retail:payments" elementFormDefault="qualified">
      <xsd:element name="GetPayments">
        <xsd:complexType><xsd:sequence>
          <xsd:element name="AfterTimestamp" type="xsd:string"/>
          <xsd:element name="AfterPaymentId" type="xsd:string"/>
          <xsd:element name="Limit" type="xsd:int"/>
        </xsd:sequence></xsd:complexType>
      </xsd:element>
      <xsd:complexType name="Payment"><xsd:sequence>
        <xsd:element name="PaymentId" type="xsd:string" minOccurs="0"/>
        <xsd:element name="OrderId" type="xsd:string" minOccurs="0"/>
        <xsd:element name="Amount" type="xsd:string" minOccurs="0"/>
        <xsd:element name="Currency" type="xsd:string" minOccurs="0"/>
        <xsd:element name="Status" type="xsd:string" minOccurs="0"/>
        <xsd:element name="Timestamp" type="xsd:string" minOccurs="0"/>
      </xsd:sequence></xsd:complexType>
      <xsd:complexType name="Payments"><xsd:sequence>
        <xsd:element name="Payment" type="tns:Payment" minOccurs="0" maxOccurs="unbounded"/>
      </xsd:sequence></xsd:complexType>
      <xsd:element name="GetPaymentsResponse">
        <xsd:complexType><xsd:sequence>
          <xsd:element name="Payments" type="tns:Payments"/>
        </xsd:sequence></xsd:complexType>
      </xsd:element>
    </xsd:schema>
  </types>
  <message name="GetPaymentsInput"><part name="parameters" element="tns:GetPayments"/></message>
  <message name="GetPaymentsOutput"><part name="parameters" element="tns:GetPaymentsResponse"/></message>
  <portType name="PaymentPort">
    <operation name="GetPayments">
      <input message="tns:GetPaymentsInput"/>
      <output message="tns:GetPaymentsOutput"/>
    </operation>
  </portType>
  <binding name="PaymentBinding" type="tns:PaymentPort">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="GetPayments">
      <soap:operation soapAction="urn:retail:payments/GetPayments"/>
      <input><soap:body use="literal"/></input>
      <output><soap:body use="literal"/></output>
    </operation>
  </binding>
  <service name="PaymentService">
    <port name="PaymentPort" binding="tns:PaymentBinding">
      <soap:address location="http://127.0.0.1${path}"/>
    </port>
  </service>
</definitions>`;

// Key order: timestamp (as instants), then payment id. Unparseable timestamps sort first.
// 'numeric': ids compare as numbers (a service sorting integer ids: "9" before "10").
const id = (v) => (state.mode === 'numeric' ? Number(v ?? '') || 0 : String(v ?? ''));
const key = (p) => [Date.parse(p.Timestamp) || 0, id(p.PaymentId)];
const after = (a, b) => a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);
const before = (a, b) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);

function services(version) {
  return {
    PaymentService: {
      PaymentPort: {
        GetPayments(args) {
          if (state.mode === 'fault') {
            if (version === '1.1') {
              throw { Fault: { faultcode: 'soap:Server', faultstring: 'payment ledger unavailable', statusCode: 500 } };
            }
            throw {
              Fault: {
                Code: { Value: 'soap:Receiver', Subcode: { Value: 'tns:LedgerDown' } },
                Reason: { Text: 'payment ledger unavailable' },
                statusCode: 500,
              },
            };
          }
          const from = [Date.parse(args.AfterTimestamp) || 0, id(args.AfterPaymentId)];
          const limit = Number(args.Limit) || 100;
          // 'inclusive': a service that pages by timestamp only (>=) and ignores the payment id.
          const wanted = state.mode === 'inclusive' ? (p) => key(p)[0] >= from[0] : (p) => after(key(p), from);
          const page = state.payments
            .filter(wanted)
            .sort((a, b) => (before(key(a), key(b)) ? -1 : after(key(a), key(b)) ? 1 : 0))
            .slice(0, limit);
          return { Payments: { Payment: page } };
        },
      },
    },
  };
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    try {
      if (req.method === 'POST' && req.url === '/control/payments') {
        state.payments.push(...JSON.parse(body));
        return json(res, 200, { payments: state.payments.length });
      }
      if (req.method === 'POST' && req.url === '/control/mode') {
        state.mode = JSON.parse(body).mode;
        return json(res, 200, { mode: state.mode });
      }
      if (req.method === 'GET' && req.url === '/control/stats') {
        return json(res, 200, { requests: state.requests, payments: state.payments.length, last: state.last });
      }
      json(res, 404, { error: `no route ${req.method} ${req.url}` });
    } catch (e) {
      json(res, 400, { error: String(e) });
    }
  });
});

// Runs before node-soap looks at a request (on every path): counts and records SOAP requests,
// and answers the broken modes that never reach a SOAP handler.
function gate(req, res) {
  if (!req.url.startsWith('/soap') || req.retailSeen) return true;
  req.retailSeen = true;
  state.requests += 1;
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    state.last = {
      path: req.url,
      content_type: req.headers['content-type'] || null,
      soapaction: req.headers['soapaction'] ?? null,
      body,
    };
  });
  if (state.mode === 'not_xml') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('Service temporarily unavailable, please try again later');
    return false;
  }
  const basic = 'Basic ' + Buffer.from('retail:pw-0123').toString('base64');
  if (state.mode === 'auth' && req.headers['authorization'] !== basic) {
    res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Basic realm="payments"' });
    res.end('Unauthorized');
    return false;
  }
  if (state.mode === 'deep_fault') {
    // A Fault nested 5,000 levels deep (a hostile or broken service).
    const n = 5000;
    res.writeHead(500, { 'content-type': 'text/xml; charset=utf-8' });
    res.end(
      '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>' +
        '<a>x'.repeat(n) + '</a>'.repeat(n) + '</s:Fault></s:Body></s:Envelope>'
    );
    return false;
  }
  if (state.mode === 'http500') {
    res.writeHead(500, { 'content-type': 'text/html' });
    res.end('<html><head><title>500</title></head><body><h1>Internal Server Error</h1><p>upstream died</body></html>');
    return false;
  }
  return true;
}

let ready = 0;
const done = (err) => {
  if (err) {
    console.error(`cannot start the SOAP service: ${err}`);
    process.exit(1);
  }
  ready += 1;
  if (ready === 3) console.log(`LISTENING ${server.address().port}`);
};
for (const [path, ns, version, soap12] of [
  ['/soap11', 'http://schemas.xmlsoap.org/wsdl/soap/', '1.1', false],
  ['/soap12', 'http://schemas.xmlsoap.org/wsdl/soap12/', '1.2', true],
]) {
  const s = soap.listen(server, {
    path,
    services: services(version),
    xml: wsdl(ns, path),
    forceSoap12Headers: soap12,
    callback: done,
  });
  s.authorizeConnection = gate;
  s.suppressStack = true;
}
server.listen(0, '127.0.0.1', () => done());
process.stdin.on('end', () => process.exit(0)); // the test's end closes our stdin
process.stdin.resume();
