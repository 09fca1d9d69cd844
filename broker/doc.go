// Package broker owns the relay's side of NATS: it starts an in-process
// nats-server with JetStream for single-machine use (StartEmbedded), opens
// the client connection that reconnects forever and logs every change of
// state (Connect), creates or updates the one stream that captures
// every subject under the configured prefix (EnsureStream), and reads
// windows of that stream back (Walk).
//
// The contract:
//   - StartEmbedded listens on loopback only; by default on 127.0.0.1:4222
//     when that port is free, else on a random loopback port. Shutdown
//     returns once the server has stopped.
//   - Connect returns only once connected (or when ctx ends); from then on
//     the connection reconnects forever and never gives up on its own.
//   - EnsureStream is called once at start, never per message. It
//     validates its options (ErrInvalidStream) before talking to the server
//     and makes the stream match them: subjects <prefix>.>, file storage,
//     the given max age, replicas and duplicate window.
//   - With WithURLFile, the embedded server keeps its client URL in
//     <data dir>/nats.url (URLFile) while it runs; EmbeddedURL reads it, so
//     that tools on the same machine (replay, dead letters, check) find the
//     embedded server of a relay running on that data dir.
//   - Walk reads a window of the stream back (subjects, storage times) in
//     stream order with an ordered, ephemeral consumer: it never modifies
//     the stream and leaves no consumer behind.
//
// Package brokertest holds the helpers other packages' tests use to run a
// real embedded JetStream server.
package broker
