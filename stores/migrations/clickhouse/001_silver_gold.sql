CREATE DATABASE IF NOT EXISTS {silver};
CREATE DATABASE IF NOT EXISTS {gold};
CREATE TABLE IF NOT EXISTS {silver}.ticks (
  event_id String,
  instrument_id String,
  event_time_ms Int64,
  event_time DateTime('UTC'),
  price Float64,
  size Float64,
  source String,
  symbol String,
  commodity String,
  region String,
  currency String,
  unit String,
  ingest_time_ms Int64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY (instrument_id, event_id);
CREATE TABLE IF NOT EXISTS {silver}.curve_points (
  event_id String,
  curve_id String,
  as_of Date,
  tenor String,
  price Float64,
  event_time_ms Int64,
  event_time DateTime('UTC'),
  source String,
  curve String,
  commodity String,
  region String,
  currency String,
  unit String,
  ingest_time_ms Int64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(as_of)
ORDER BY (curve_id, event_id);
CREATE TABLE IF NOT EXISTS {gold}.bars (
  instrument_id String,
  resolution String,
  start DateTime('UTC'),
  start_ms Int64,
  end_ms Int64,
  open Float64,
  high Float64,
  low Float64,
  close Float64,
  volume Float64,
  vwap Float64,
  count UInt64,
  final UInt8,
  version UInt64,
  event_time DateTime('UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY (instrument_id, resolution, start_ms);
CREATE TABLE IF NOT EXISTS {gold}.curves (
  curve_id String,
  as_of Date,
  tenor String,
  price Float64,
  version UInt64,
  event_time DateTime('UTC'),
  event_time_ms Int64,
  event_id String
) ENGINE = ReplacingMergeTree(version)
ORDER BY (curve_id, as_of, tenor);
