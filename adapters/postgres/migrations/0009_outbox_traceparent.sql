-- The W3C traceparent of the request whose transaction wrote the event (NULL when it had no
-- trace): the relay publishes it as the AMQP header `traceparent`, so that a consumer's work
-- joins the trace of the upload that caused it.
ALTER TABLE outbox ADD COLUMN traceparent text NULL;
