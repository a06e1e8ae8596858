CREATE TABLE IF NOT EXISTS instruments (
  instrument_id text PRIMARY KEY,
  commodity text,
  region text,
  currency text,
  unit text
);

CREATE TABLE IF NOT EXISTS instrument_map (
  source text NOT NULL,
  symbol text NOT NULL,
  instrument_id text NOT NULL,
  price_multiplier numeric NOT NULL DEFAULT 1,
  PRIMARY KEY (source, symbol)
);

CREATE TABLE IF NOT EXISTS curves (
  curve_id text PRIMARY KEY,
  commodity text,
  region text,
  currency text,
  unit text
);

CREATE TABLE IF NOT EXISTS curve_map (
  source text NOT NULL,
  curve text NOT NULL,
  curve_id text NOT NULL,
  PRIMARY KEY (source, curve)
);

CREATE TABLE IF NOT EXISTS audit_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor text NOT NULL,
  action text NOT NULL,
  target jsonb NOT NULL DEFAULT '{}'::jsonb,
  outcome text NOT NULL,
  details jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX IF NOT EXISTS audit_log_at_idx ON audit_log (at);
