-- Roles (SPEC section 12): the incident commander and the comms lead, as Slack user ids the bot got from Slack
-- (a mention in `/incident role`, or the clicker of "Take command"). NULL while nobody holds the role.
ALTER TABLE incidents ADD COLUMN ic_user TEXT;
ALTER TABLE incidents ADD COLUMN comms_user TEXT;
