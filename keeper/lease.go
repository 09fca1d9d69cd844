package keeper

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// MaxLeaseTTL is the longest lease the contract allows: a dead holder must
// be replaced within seconds.
const MaxLeaseTTL = 15 * time.Second

// checkTTL refuses a lease TTL outside (0, MaxLeaseTTL].
func checkTTL(ttl time.Duration) error {
	if ttl <= 0 || ttl > MaxLeaseTTL {
		return fmt.Errorf("lease TTL %s outside (0, %s]", ttl, MaxLeaseTTL)
	}
	return nil
}

// LeaseBucket creates (or updates) the JetStream KV bucket that holds
// leases. Its TTL is the lease TTL: an entry nobody renews disappears after
// ttl, so a crashed holder is replaced without anyone deleting its entry.
func LeaseBucket(ctx context.Context, js jetstream.JetStream, bucket string, ttl time.Duration, replicas int) (jetstream.KeyValue, error) {
	if err := checkTTL(ttl); err != nil {
		return nil, fmt.Errorf("keeper: %w", err)
	}
	if replicas < 1 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "upvest-relay control-loop lease",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("keeper: lease bucket %q: %w", bucket, err)
	}
	return kv, nil
}

// Lease is a leadership lease on one key of a KV bucket made by
// LeaseBucket. The holder writes its id; it renews by compare-and-set on
// the revision it wrote last, so two replicas can never both believe they
// hold it after a renewal. A Lease is used by one goroutine.
type Lease struct {
	kv     jetstream.KeyValue
	open   func(context.Context) (jetstream.KeyValue, error) // sets kv on first use when nil
	key    string
	holder string
	rev    uint64
	held   bool
}

// NewLease returns a lease on key in kv for holder, which must be unique
// per process (e.g. host name plus a random suffix).
func NewLease(kv jetstream.KeyValue, key, holder string) *Lease {
	return &Lease{kv: kv, key: key, holder: holder}
}

// leaseKey is the lease key for the subscription of url: replicas that
// maintain the same URL compete for the same key.
func leaseKey(url string) string {
	sum := sha256.Sum256([]byte(url))
	return "leader_" + hex.EncodeToString(sum[:8])
}

// holderID names this process uniquely among replicas: host name plus a
// random suffix.
func holderID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// Holder is this lease's holder id.
func (l *Lease) Holder() string { return l.holder }

// Try acquires the lease if it is free, renews it if held, and reports
// whether it is held afterwards. It must be called well within the bucket
// TTL (a third of it is a good period). On an error the lease is reported
// as not held: a replica that cannot reach JetStream must not act as
// leader, because another one may already have taken over.
func (l *Lease) Try(ctx context.Context) (bool, error) {
	if l.kv == nil {
		kv, err := l.open(ctx)
		if err != nil {
			return false, err
		}
		l.kv = kv
	}
	if l.held {
		rev, err := l.kv.Update(ctx, l.key, []byte(l.holder), l.rev)
		if err == nil {
			l.rev = rev
			return true, nil
		}
		l.held = false
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return false, fmt.Errorf("keeper: renew lease: %w", err)
		}
		// Lost it (expired and taken, or deleted): fall through and compete.
	}
	rev, err := l.kv.Create(ctx, l.key, []byte(l.holder))
	if err == nil {
		l.rev, l.held = rev, true
		return true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, fmt.Errorf("keeper: acquire lease: %w", err)
	}
	// Someone holds it. If it is still our own entry (we lost track of it
	// through a transient error), adopt it rather than wait for it to expire.
	e, err := l.kv.Get(ctx, l.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("keeper: read lease: %w", err)
	case string(e.Value()) == l.holder:
		l.rev, l.held = e.Revision(), true
		return l.Try(ctx)
	}
	return false, nil
}

// Release gives the lease up if held, so a standby takes over at once
// instead of after the TTL.
func (l *Lease) Release(ctx context.Context) error {
	if !l.held {
		return nil
	}
	l.held = false
	if err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev)); err != nil {
		return fmt.Errorf("keeper: release lease: %w", err)
	}
	return nil
}
