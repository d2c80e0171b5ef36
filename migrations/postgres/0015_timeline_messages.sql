-- Messages responders capture into an incident's timeline (SPEC section 12: a 📌 reaction or the "Add to
-- incident timeline" message shortcut). A captured message is a `timeline_events` row of kind `message` whose
-- `at` is the message's own time; `message_ts` is its Slack `ts` in the incident's channel (one row per
-- incident and message: capturing it twice stores it once), `permalink` Slack's link to it, and `deleted` is 1
-- once the message was deleted in Slack. Other timeline lines leave these NULL / 0.
ALTER TABLE timeline_events ADD COLUMN message_ts TEXT;
ALTER TABLE timeline_events ADD COLUMN permalink TEXT;
ALTER TABLE timeline_events ADD COLUMN deleted BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX timeline_events_message ON timeline_events (incident_id, message_ts);
