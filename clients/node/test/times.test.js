'use strict';
// ConvdDate and the times importMessage accepts (pure: no convd needed;
// the three timestamp formats convd sends are read in methods.test.js).

const test = require('node:test');
const assert = require('node:assert/strict');
const { client } = require('./helpers');

const { ConvdDate, toEpochMicroseconds } = client;

test('ConvdDate keeps microseconds and is a Date', () => {
  const d = new ConvdDate(1796296906123456n);
  assert.ok(d instanceof Date);
  assert.equal(d.getTime(), 1796296906123);
  assert.equal(d.microseconds, 123456);
  assert.equal(d.epochMicroseconds, 1796296906123456n);
  assert.equal(d.toISOString(), '2026-12-03T11:21:46.123Z');
  assert.equal(d.toISOStringMicro(), '2026-12-03T11:21:46.123456Z');
  assert.equal(JSON.stringify({ d }), '{"d":"2026-12-03T11:21:46.123456Z"}');
  assert.equal(new ConvdDate(d).epochMicroseconds, d.epochMicroseconds);
  assert.equal(ConvdDate.fromEpochMicroseconds(5).toISOStringMicro(), '1970-01-01T00:00:00.000005Z');
  // before 1970 the fraction still counts forward from the second
  const early = new ConvdDate(-1n);
  assert.equal(early.toISOStringMicro(), '1969-12-31T23:59:59.999999Z');
  assert.equal(early.microseconds, 999999);
  // made like a Date: whole milliseconds
  assert.equal(new ConvdDate('2026-01-02T03:04:05.678Z').epochMicroseconds, 1767323045678000n);
  assert.equal(JSON.stringify(new ConvdDate(NaN)), 'null');
});

test('toEpochMicroseconds: ISO 8601 text, zones, Dates, bigints', () => {
  const base = 1767225600000000n; // 2026-01-01T00:00:00Z
  assert.equal(toEpochMicroseconds('2026-01-01T00:00:00Z'), base);
  assert.equal(toEpochMicroseconds('2026-01-01T00:00:00'), base); // no zone: UTC
  assert.equal(toEpochMicroseconds('2026-01-01 08:00:00.5+08:00'), base + 500000n);
  assert.equal(toEpochMicroseconds('2025-12-31T19:30:00.000001-0430'), base + 1n);
  assert.equal(toEpochMicroseconds('2026-01-01T00:00:00.1234567Z'), base + 123456n);
  assert.equal(toEpochMicroseconds(new Date('2026-01-01T00:00:00.250Z')), base + 250000n);
  assert.equal(toEpochMicroseconds(new ConvdDate(base + 7n)), base + 7n);
  assert.equal(toEpochMicroseconds(base), base);
  for (const bad of ['yesterday', '2026-13-01T00:00:00Z', '', new Date(NaN), 1767225600, null]) {
    assert.throws(() => toEpochMicroseconds(bad), TypeError, String(bad));
  }
});
