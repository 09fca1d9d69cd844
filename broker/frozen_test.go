package broker_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
)

// freezer is a TCP proxy in front of a NATS server that can freeze: it
// keeps every connection open but stops passing bytes either way, as a
// SIGSTOPped server or a hung VM does.
type freezer struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	wg     sync.WaitGroup
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target}
	f.wg.Go(f.accept)
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

func (f *freezer) url() string { return "nats://" + f.ln.Addr().String() }

func (f *freezer) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", f.target)
		if err != nil {
			c.Close()
			continue
		}
		f.wg.Go(func() { f.pipe(s, c) })
		f.wg.Go(func() { f.pipe(c, s) })
	}
}

// pipe copies from src to dst until either closes; while frozen, what it
// reads is dropped.
func (f *freezer) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !f.frozen.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestLeavesAFrozenServerWithinSeconds: a connection whose server stops
// answering (its TCP connection stays open) is declared stale by the
// pings and moves to another server of the URL list within seconds, not
// the minutes of nats.go's defaults.
func TestLeavesAFrozenServerWithinSeconds(t *testing.T) {
	t.Parallel()
	a, _, _ := brokertest.New(t)
	b, _, _ := brokertest.New(t)
	proxy := newFreezer(t, strings.TrimPrefix(a.ClientURL(), "nats://"))

	var logs testkit.LogBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := broker.Connect(ctx, proxy.url()+","+b.ClientURL(), zerolog.New(&logs),
		broker.WithNATSOptions(nats.DontRandomize(), nats.ReconnectWait(50*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.ConnectedUrl(); got != proxy.url() {
		t.Fatalf("connected to %s, want the proxy %s first", got, proxy.url())
	}

	proxy.frozen.Store(true)
	frozeAt := time.Now()
	testkit.Eventually(t, 15*time.Second, "moved to the other server", func() bool {
		return nc.IsConnected() && nc.ConnectedUrl() == b.ClientURL()
	})
	// Pings every 2 s, stale after 2 unanswered: about 4 to 6 s.
	if took := time.Since(frozeAt); took > 10*time.Second {
		t.Errorf("left the frozen server after %s, want within 10 s", took)
	}
	if !strings.Contains(logs.String(), "NATS disconnected") || !strings.Contains(logs.String(), "NATS reconnected") {
		t.Errorf("the move was not logged:\n%s", logs.String())
	}
}
