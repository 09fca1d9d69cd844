// Package deadletter reads the relay's dead letters back from the stream
// and redrives them through the relay's current splitter.
//
// A dead letter is a message on <prefix>._deadletter that the relay stored
// for validly signed input it could not relay: a whole body that is not a
// package (no Relay-Deadletter-Index header), or one element of a package's
// payload that is not an event (the header gives its position). Its data
// is the raw bytes as received; Relay-Deadletter-Reason says why and
// Relay-Request-Id names the request it came with.
//
// The contract:
//   - List and Get only read: they never modify the stream and leave no
//     consumer behind (see broker.Walk).
//   - Redrive runs the selected dead letters' data through relay.Redrive,
//     which turns it into exactly the messages a live delivery of the same
//     bytes would give today, and publishes those in payload order. It never
//     needs the signature again: the data was verified when it arrived.
//   - Redrive is idempotent by event id. An event already in the stream on
//     its subject since the dead letter arrived (an earlier redrive, or the
//     same event delivered again) is not published again, however old it is;
//     and each publish carries Nats-Msg-Id = event id, so JetStream's
//     duplicate window also covers concurrent redrives and the live relay.
//     Finding what is stored reads the headers (not the data) of the
//     messages on the redriven events' subjects since the oldest selected
//     dead letter arrived, once per 32 MiB of redriven data.
//   - What still fails stays where it is and is reported with its reason.
//   - Redrive never deletes or changes a dead letter, not even one it
//     redrove wholly: the stream is the append-only history that replay
//     reads, a dead letter records what Upvest sent and why it was refused
//     at the time, and idempotency makes keeping it harmless. Dead letters
//     leave the stream with its age limit, like every other message. The
//     redriven events are new messages with their own storage time (the
//     time of the redrive), which is where replay finds them.
package deadletter
