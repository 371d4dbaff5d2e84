-- 017_reply_text.sql: the text of an automatic reply, kept with the
-- message it answered.
--
-- The staff saw only an "auto-replied" tag: Twilio sends a TwiML reply
-- itself, and its status callbacks carry no text, so the outbound
-- message was a bubble with nothing in it.  The reply's text is now kept
-- on the inbound message it answered (reply_text), and the status
-- callback telehook asks for names that message (?reply_to=), so the
-- outbound message gets the text too.
ALTER TABLE messages ADD COLUMN reply_text text;
