-- updated_at lets nodes reload reference data only when it changed.
ALTER TABLE instrument_map ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE instruments ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE curve_map ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE curves ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
