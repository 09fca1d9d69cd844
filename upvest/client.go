package upvest

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/upvest-relay/upvest-relay/httpsig"
)

// Defaults for the options.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultRetryAfterCap = 2 * time.Second
)

const (
	// signatureLifetime is expires - created, as Upvest's own signer sets it.
	signatureLifetime = 60 * time.Second
	// maxResponseBody bounds a successful answer (a page of 1000 webhooks
	// is well under 2 MiB).
	maxResponseBody = 16 << 20
)

// Option configures a Client.
type Option func(*options)

type options struct {
	scopes        []string
	timeout       time.Duration
	retryAfterCap time.Duration
	transport     http.RoundTripper
	log           zerolog.Logger
}

// WithScopes sets the OAuth scopes requested with the token. The default,
// "webhooks:read webhooks:admin", is enough to manage webhook subscriptions
// and to fetch /auth/verify_keys.
func WithScopes(scopes ...string) Option {
	return func(o *options) { o.scopes = append([]string(nil), scopes...) }
}

// WithTimeout bounds each API call, including its token fetch and its one
// retry after a 429 (default DefaultTimeout). It must be positive.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// WithRetryAfterCap sets the longest Retry-After the client waits out
// itself: a 429 whose Retry-After is at most d is retried once, with the
// same idempotency key, if the call's deadline leaves room. Anything else
// is returned as an *APIError matching ErrThrottled so the caller backs off.
// 0 disables the retry. Default DefaultRetryAfterCap.
func WithRetryAfterCap(d time.Duration) Option {
	return func(o *options) { o.retryAfterCap = d }
}

// WithTransport sets the base transport under signing (default
// http.DefaultTransport).
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.transport = rt }
}

// WithLogger sets the logger for per-call debug lines (method, path,
// status, request id, duration; never headers or bodies). Default: none.
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) { o.log = l }
}

// Client calls the Upvest Investment API. It is safe for concurrent use.
type Client struct {
	baseURL       string
	http          *http.Client
	tokens        *tokenSource
	timeout       time.Duration
	retryAfterCap time.Duration
	log           zerolog.Logger
}

// New returns a client for the API at baseURL (e.g.
// https://sandbox.upvest.co), authenticating with the OAuth client
// credentials clientID and clientSecret and signing with signer (ECDSA or
// Ed25519, see LoadSigningKey) under keyID. No request is made until the
// first call. Invalid arguments give an error wrapping ErrInvalid.
func New(baseURL, clientID, clientSecret string, signer crypto.Signer, keyID string, opts ...Option) (*Client, error) {
	o := options{
		scopes:        []string{"webhooks:read", "webhooks:admin"},
		timeout:       DefaultTimeout,
		retryAfterCap: DefaultRetryAfterCap,
		log:           zerolog.Nop(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	base, err := parseBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	switch {
	case clientSecret == "":
		return nil, fmt.Errorf("%w: empty client secret", ErrInvalid)
	case len(o.scopes) == 0:
		return nil, fmt.Errorf("%w: no scopes", ErrInvalid)
	case o.timeout <= 0:
		return nil, fmt.Errorf("%w: timeout %s is not positive", ErrInvalid, o.timeout)
	case o.retryAfterCap < 0:
		return nil, fmt.Errorf("%w: negative retry-after cap", ErrInvalid)
	}
	signing, err := NewSigningTransport(o.transport, clientID, &httpsig.Signer{
		Key:      signer,
		KeyID:    keyID,
		Style:    httpsig.Quoted,
		Lifetime: signatureLifetime,
	})
	if err != nil {
		return nil, err
	}

	// The token call: signed, no authorization. The oauth2 token source
	// finds this client in the context it is created with; that context
	// lives as long as the Client, so it is Background plus the value, and
	// the client's own Timeout bounds each token fetch.
	tokenClient := &http.Client{Transport: signing, Timeout: o.timeout, CheckRedirect: noRedirect}
	cc := &clientcredentials.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		TokenURL:     base + "/auth/token",
		Scopes:       o.scopes,
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	tokenCtx := context.WithValue(context.Background(), oauth2.HTTPClient, tokenClient)
	tokens := &tokenSource{fresh: func() oauth2.TokenSource { return cc.TokenSource(tokenCtx) }}
	tokens.reset()

	return &Client{
		baseURL: base,
		http: &http.Client{
			// oauth2 first, so authorization is set before signing.
			Transport:     authTransport{&oauth2.Transport{Source: tokens, Base: signing}},
			Timeout:       o.timeout,
			CheckRedirect: noRedirect,
		},
		tokens:        tokens,
		timeout:       o.timeout,
		retryAfterCap: o.retryAfterCap,
		log:           o.log,
	}, nil
}

// HTTPClient returns the authenticated, signed client the Client itself
// uses (redirects are not followed, each request is bounded by the call
// timeout). Hand it to the verifier's key cache to fetch VerifyKeysURL; that
// needs the webhooks:read scope.
func (c *Client) HTTPClient() *http.Client { return c.http }

// VerifyKeysURL is the URL of Upvest's webhook verification JWKS.
func (c *Client) VerifyKeysURL() string { return c.baseURL + "/auth/verify_keys" }

// parseBaseURL checks baseURL is an absolute http(s) URL and drops any
// trailing slash. Errors do not repeat the URL (it could carry userinfo).
func parseBaseURL(baseURL string) (string, error) {
	u, err := url.Parse(baseURL)
	switch {
	case err != nil, u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return "", fmt.Errorf("%w: base URL must be an absolute http(s) URL", ErrInvalid)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("%w: base URL must not have userinfo, query or fragment", ErrInvalid)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// authTransport hides oauth2.Transport's deprecated CancelRequest, which
// http.Client calls when its Timeout fires and which then writes a warning
// to the standard logger.
type authTransport struct{ t *oauth2.Transport }

func (a authTransport) RoundTrip(r *http.Request) (*http.Response, error) { return a.t.RoundTrip(r) }

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// tokenSource is the oauth2 reuse-token source, replaceable so that a 401
// on an API call drops a token Upvest no longer accepts.
type tokenSource struct {
	fresh func() oauth2.TokenSource
	mu    sync.Mutex
	ts    oauth2.TokenSource
}

func (s *tokenSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	ts := s.ts
	s.mu.Unlock()
	return ts.Token()
}

func (s *tokenSource) reset() {
	ts := s.fresh()
	s.mu.Lock()
	s.ts = ts
	s.mu.Unlock()
}

// do makes one logical API call: method on path with query, the JSON of in
// (if not nil) as body, decoding a 2xx answer into out (if not nil). The
// whole call, including one retry after a short 429, is bounded by the
// client's timeout. POST and PATCH carry one idempotency key across the
// retry.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return opError(method, path, fmt.Errorf("%w: encode request: %v", ErrInvalid, err))
		}
	}
	target := c.baseURL + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var idemKey string
	if method == http.MethodPost || method == http.MethodPatch {
		idemKey = uuid.NewString()
	}
	for attempt := 1; ; attempt++ {
		err := c.attempt(ctx, method, target, body, idemKey, out)
		var ae *APIError
		if attempt > 1 || !errors.As(err, &ae) || !c.retryable(ctx, ae) {
			if err != nil {
				return opError(method, path, err)
			}
			return nil
		}
		c.log.Debug().Str("method", method).Str("path", path).Int64("retry_after_ms", ae.RetryAfter.Milliseconds()).
			Str("request_id", ae.RequestID).Msg("upvest: throttled, retrying once")
		t := time.NewTimer(ae.RetryAfter)
		select {
		case <-ctx.Done():
			t.Stop()
			return opError(method, path, fmt.Errorf("%w; gave up waiting to retry: %w", ae, ctx.Err()))
		case <-t.C:
		}
	}
}

// retryable reports whether a 429 is retried: Retry-After present, within
// the cap, and before the call's deadline.
func (c *Client) retryable(ctx context.Context, ae *APIError) bool {
	if ae.Status != http.StatusTooManyRequests || !ae.retryAfterSet || c.retryAfterCap == 0 || ae.RetryAfter > c.retryAfterCap {
		return false
	}
	dl, ok := ctx.Deadline()
	return !ok || time.Until(dl) > ae.RetryAfter
}

// attempt sends one request and reads its answer.
func (c *Client) attempt(ctx context.Context, method, target string, body []byte, idemKey string, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	c.log.Debug().Str("method", method).Str("path", req.URL.Path).Int("status", resp.StatusCode).
		Str("request_id", resp.Header.Get("Upvest-Request-Id")).Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).Msg("upvest: call")

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := readAPIError(resp, time.Now())
		if ae.Status == http.StatusUnauthorized {
			c.tokens.reset() // the token may have been revoked; fetch a new one next time
		}
		return ae
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("read answer: %w", ctx.Err())
		}
		return fmt.Errorf("read answer: %w", err)
	}
	if len(data) > maxResponseBody {
		return fmt.Errorf("%w: answer over %d bytes", ErrBadResponse, maxResponseBody)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: decode answer: %v", ErrBadResponse, err)
	}
	return nil
}

// transportError turns a failed Do into an error free of secrets: a failed
// token call becomes an *APIError (oauth2's own error would quote the
// answer's body), and a timeout or cancellation wraps the context error.
func (c *Client) transportError(ctx context.Context, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		return fmt.Errorf("token: %w", newAPIError(re.Response.StatusCode, re.Response.Header, re.Body, time.Now()))
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return err
}
