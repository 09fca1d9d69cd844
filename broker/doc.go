// Package broker owns the relay's side of NATS: it starts an in-process
// nats-server with JetStream for single-machine use (StartEmbedded), opens
// the client connection that reconnects forever and logs every change of
// state (Connect), and creates or updates the one stream that captures
// every subject under the configured prefix (EnsureStream).
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
//
// Package brokertest holds the helpers other packages' tests use to run a
// real embedded JetStream server.
package broker
