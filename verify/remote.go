package verify

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Defaults for RemoteKeys.
const (
	DefaultRefreshInterval = 5 * time.Minute
	DefaultRefetchInterval = 10 * time.Second
	DefaultFetchTimeout    = 10 * time.Second
)

// maxJWKSBytes bounds a fetched key set document.
const maxJWKSBytes = 1 << 20

// RemoteKeys is a KeySource fetched over HTTP, normally Upvest's
// GET /auth/verify_keys through the Upvest API client (whose transport adds
// the OAuth token and signs the request).
//
// The set is loaded and refreshed by Run, and refetched on demand when Key
// is asked for an unknown kid, at most once per refetch interval; concurrent
// misses share that one fetch. A failed fetch is logged and leaves the last
// good set in place. RemoteKeys is safe for concurrent use.
type RemoteKeys struct {
	url     string
	client  *http.Client
	refresh time.Duration
	refetch time.Duration
	timeout time.Duration
	log     zerolog.Logger

	keys    atomic.Pointer[keySet]
	fetchMu sync.Mutex // serialises fetches so an older answer never wins

	mu          sync.Mutex    // guards the two fields below
	lastRefetch time.Time     // start of the last on-demand refetch
	inflight    chan struct{} // closed when the current on-demand refetch ends
}

// RemoteOption configures RemoteKeys.
type RemoteOption func(*RemoteKeys)

// WithRefreshInterval sets how often Run refetches the key set
// (default DefaultRefreshInterval).
func WithRefreshInterval(d time.Duration) RemoteOption {
	return func(k *RemoteKeys) { k.refresh = d }
}

// WithRefetchInterval sets the minimum time between two refetches caused by
// an unknown kid (default DefaultRefetchInterval). Within it, an unknown
// kid is answered with ErrUnknownKey without any request upstream.
func WithRefetchInterval(d time.Duration) RemoteOption {
	return func(k *RemoteKeys) { k.refetch = d }
}

// WithFetchTimeout bounds each fetch (default DefaultFetchTimeout).
func WithFetchTimeout(d time.Duration) RemoteOption {
	return func(k *RemoteKeys) { k.timeout = d }
}

// WithLogger sets the logger for fetch failures and key set changes
// (default: none). Logs carry the URL without credentials, key ids and
// errors; never key material, tokens or response bodies.
func WithLogger(l zerolog.Logger) RemoteOption {
	return func(k *RemoteKeys) { k.log = l }
}

// NewRemoteKeys returns a KeySource for the JWK set at rawURL, fetched with
// client (nil means a plain http.Client; pass the Upvest API client so the
// request is authorised and signed). It does no I/O: call Run to load the
// set and keep it fresh.
func NewRemoteKeys(rawURL string, client *http.Client, opts ...RemoteOption) (*RemoteKeys, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("verify: key set URL must be an absolute http(s) URL")
	}
	if client == nil {
		client = &http.Client{}
	}
	k := &RemoteKeys{
		url:     rawURL,
		client:  client,
		refresh: DefaultRefreshInterval,
		refetch: DefaultRefetchInterval,
		timeout: DefaultFetchTimeout,
		log:     zerolog.Nop(),
	}
	for _, o := range opts {
		o(k)
	}
	switch {
	case k.refresh <= 0:
		return nil, fmt.Errorf("verify: refresh interval must be positive, got %s", k.refresh)
	case k.refetch < 0:
		return nil, fmt.Errorf("verify: refetch interval must not be negative, got %s", k.refetch)
	case k.timeout <= 0:
		return nil, fmt.Errorf("verify: fetch timeout must be positive, got %s", k.timeout)
	}
	k.log = k.log.With().Str("component", "verify").Str("url", u.Redacted()).Logger()
	return k, nil
}

// Run loads the key set at once and then refreshes it every refresh
// interval until ctx is done. While no set has ever loaded it retries
// sooner, backing off from one second up to the refresh interval. Run is
// the only goroutine RemoteKeys needs, and it is the caller's: start it in
// the process's errgroup. It returns nil when ctx is done.
func (k *RemoteKeys) Run(ctx context.Context) error {
	backoff := time.Second
	for {
		wait := k.refresh
		if err := k.update(ctx, "refresh"); err != nil && !k.Ready() {
			wait = min(backoff, k.refresh)
			backoff *= 2
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Ready reports whether a key set has been loaded (for /readyz).
func (k *RemoteKeys) Ready() bool { return k.keys.Load() != nil }

// Key returns the key with id kid. An unknown kid triggers one refetch
// (rate-limited, see WithRefetchInterval) before the answer is an error
// wrapping ErrUnknownKey; ErrKeysUnavailable means no key set has ever
// been loaded. ctx bounds only the wait: a refetch that others may share
// runs to its own timeout.
func (k *RemoteKeys) Key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	if pub, ok := k.lookup(kid); ok {
		return pub, nil
	}
	ferr := k.refetchOnce(ctx)
	if pub, ok := k.lookup(kid); ok {
		return pub, nil
	}
	if !k.Ready() {
		if ferr == nil {
			ferr = errors.New("no key set loaded yet")
		}
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, ferr)
	}
	if ferr != nil {
		return nil, fmt.Errorf("%w: keyid %q (refetch: %w)", ErrUnknownKey, short(kid), ferr)
	}
	return nil, fmt.Errorf("%w: keyid %q", ErrUnknownKey, short(kid))
}

func (k *RemoteKeys) lookup(kid string) (crypto.PublicKey, bool) {
	set := k.keys.Load()
	if set == nil {
		return nil, false
	}
	pub, ok := (*set)[kid]
	return pub, ok
}

var errRateLimited = errors.New("refetch rate-limited")

// refetchOnce fetches the key set for an unknown kid, unless another such
// fetch ran within the refetch interval; callers arriving while one is in
// flight wait for it instead of starting their own.
func (k *RemoteKeys) refetchOnce(ctx context.Context) error {
	k.mu.Lock()
	if ch := k.inflight; ch != nil {
		k.mu.Unlock()
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if !k.lastRefetch.IsZero() && time.Since(k.lastRefetch) < k.refetch {
		k.mu.Unlock()
		return errRateLimited
	}
	k.lastRefetch = time.Now()
	ch := make(chan struct{})
	k.inflight = ch
	k.mu.Unlock()

	// The fetch serves every waiter, so it must not die with this caller.
	err := k.update(context.WithoutCancel(ctx), "unknown kid")

	k.mu.Lock()
	k.inflight = nil
	k.mu.Unlock()
	close(ch)
	return err
}

// update fetches the key set and installs it, logging the outcome.
func (k *RemoteKeys) update(ctx context.Context, trigger string) error {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	keys, err := k.fetch(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return err // shutting down: nothing worth a log line
		}
		k.log.Warn().Err(err).Str("trigger", trigger).Bool("have_keys", k.Ready()).
			Msg("fetching verification keys failed; keeping the last good set")
		return err
	}
	if old := k.keys.Swap(&keys); old == nil || !maps.EqualFunc(*old, keys, samePublicKey) {
		k.log.Info().Strs("kids", slices.Sorted(maps.Keys(keys))).Str("trigger", trigger).
			Msg("verification keys loaded")
	}
	return nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// fetch GETs and parses the key set. A set without any usable key is an
// error, so that a broken answer never replaces a good set.
func (k *RemoteKeys) fetch(ctx context.Context) (keySet, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("unexpected status %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading key set: %w", err)
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("key set larger than %d bytes", maxJWKSBytes)
	}
	keys, skipped, err := parseJWKS(data)
	for _, s := range skipped {
		k.log.Warn().Err(s).Msg("ignoring unusable verification key")
	}
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("key set has no usable keys")
	}
	return keys, nil
}
