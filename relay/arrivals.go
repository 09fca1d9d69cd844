package relay

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/upvest-relay/upvest-relay/subjects"
)

// Arrivals sees the packages the relay stores, at any of its replicas, by
// listening to what they publish under the subject prefix on NATS. It
// implements keeper.Arrivals: the control loop uses it to learn that a
// test delivery it asked Upvest for came in.
type Arrivals struct {
	nc     *nats.Conn
	prefix string
}

// NewArrivals returns the watcher of events published under prefix on nc.
func NewArrivals(nc *nats.Conn, prefix string) *Arrivals {
	return &Arrivals{nc: nc, prefix: prefix}
}

// flushTimeout bounds the round trip that makes a watch known to the
// server.
const flushTimeout = 5 * time.Second

// Watch returns a channel closed when an event of webhookID (an event whose
// ce-source ends in /webhooks/<webhookID>) is published from now on, by
// any replica. It listens only until then or until ctx ends, so nothing is
// received while nobody watches.
func (a *Arrivals) Watch(ctx context.Context, webhookID string) (<-chan struct{}, error) {
	suffix := "/webhooks/" + headerValue(webhookID)
	arrived := make(chan struct{})
	var once sync.Once
	sub, err := a.nc.Subscribe(subjects.Stream(a.prefix), func(m *nats.Msg) {
		if strings.HasSuffix(m.Header.Get(HeaderSource), suffix) {
			once.Do(func() { close(arrived) })
		}
	})
	if err != nil {
		return nil, err
	}
	// The subscription must be known to the server before the caller asks
	// for the delivery it watches for.
	if err := a.nc.FlushTimeout(flushTimeout); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-arrived:
		}
		_ = sub.Unsubscribe()
	}()
	return arrived, nil
}
