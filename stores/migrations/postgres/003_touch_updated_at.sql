-- Any UPDATE bumps updated_at, so nodes see reference changes within
-- DATA_PROC_REFDATA_REFRESH_MS even when the statement does not set it.
CREATE OR REPLACE FUNCTION touch_updated_at() RETURNS trigger AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS instrument_map_touch ON instrument_map;
CREATE TRIGGER instrument_map_touch BEFORE UPDATE ON instrument_map
  FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
DROP TRIGGER IF EXISTS instruments_touch ON instruments;
CREATE TRIGGER instruments_touch BEFORE UPDATE ON instruments
  FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
DROP TRIGGER IF EXISTS curve_map_touch ON curve_map;
CREATE TRIGGER curve_map_touch BEFORE UPDATE ON curve_map
  FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
DROP TRIGGER IF EXISTS curves_touch ON curves;
CREATE TRIGGER curves_touch BEFORE UPDATE ON curves
  FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
