// Package brokertest runs real, embedded NATS JetStream servers for tests:
// New gives a server on a random loopback port with its store in a
// temporary directory, a connection to it that reconnects quickly, and a
// JetStream context; Down stops a server and hands back a function that
// starts its replacement on the same port and store, for outage tests;
// NewCluster runs an n-node JetStream cluster whose nodes can be stopped
// and restarted. Everything is cleaned up when the test ends.
package brokertest

import (
	"context"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/broker"
)

// AckTimeout is the async publish timeout of the JetStream context New
// returns.
const AckTimeout = 5 * time.Second

// New starts an embedded JetStream server (random port, store under
// t.TempDir()), connects to it over TCP with reconnects every 20ms, and
// returns the server, the connection and a JetStream context on it.
func New(t testing.TB) (*server.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv := StartServer(t, t.TempDir(), -1)
	nc := Connect(t, srv.ClientURL())
	js, err := broker.NewJetStream(nc, AckTimeout)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return srv, nc, js
}

// StartServer starts an embedded JetStream server storing under dir and
// listening on 127.0.0.1:port (-1 for a random port). It is shut down
// when the test ends.
func StartServer(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	e, err := broker.StartEmbedded(dir, zerolog.Nop(), broker.WithPort(port))
	if err != nil {
		t.Fatalf("start embedded NATS: %v", err)
	}
	t.Cleanup(e.Shutdown)
	return e.Server()
}

// Connect connects to url, reconnecting forever every 20ms, and closes
// the connection when the test ends.
func Connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := broker.Connect(ctx, url, zerolog.Nop(),
		broker.WithName(t.Name()),
		broker.WithNATSOptions(nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0)))
	if err != nil {
		t.Fatalf("connect NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Down shuts srv down, waits until it has stopped, and returns a function
// that starts a new server on the same port with the same store dir (so
// streams and their messages survive) and waits until it is ready.
func Down(t testing.TB, srv *server.Server) (up func() *server.Server) {
	t.Helper()
	dir := filepath.Dir(srv.StoreDir()) // the server stores under <dir>/jetstream
	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		t.Fatalf("client url: %v", err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("client url port: %v", err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	return func() *server.Server {
		t.Helper()
		return StartServer(t, dir, port)
	}
}
