-- A dead letter whose fixed payload was resubmitted through the API (POST
-- /api/v1/dead-letters/{id}/resubmit) records when; NULL means never. The row itself stays: it is
-- the record of what was rejected and why.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS resubmitted_at timestamptz;
