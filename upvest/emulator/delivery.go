package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/upvest-relay/upvest-relay/httpsig"
)

// maxBackoff caps the retry back-off, in Upvest seconds.
const maxBackoff = 600

// Event is one Upvest event to publish.
type Event struct {
	// ID is the event's unique id; a UUID is generated when empty.
	ID string
	// CreatedAt is sent as created_at (RFC 3339); the server clock at
	// Publish when zero.
	CreatedAt time.Time
	// Type is FAMILY.STATE, e.g. "ORDER.FILLED". Its family (the part
	// before the first dot) selects the subscriptions it goes to.
	Type string
	// Object is the resource; it is encoded with encoding/json at Publish
	// (a json.RawMessage is sent as is).
	Object any
}

// Family is the part of Type before the first dot.
func (e Event) Family() string {
	f, _, _ := strings.Cut(e.Type, ".")
	return f
}

// wireEvent is an element of a package's payload, in Upvest's field order.
type wireEvent struct {
	ID        string          `json:"id"`
	CreatedAt string          `json:"created_at"`
	Type      string          `json:"type"`
	Object    json.RawMessage `json:"object"`
	WebhookID string          `json:"webhook_id"`
}

// preparedEvent is an Event with its object encoded.
type preparedEvent struct {
	id        string
	createdAt time.Time
	typ       string
	family    string
	object    json.RawMessage
}

func (p preparedEvent) encode(webhookID string) []byte {
	b, _ := json.Marshal(wireEvent{
		ID:        p.id,
		CreatedAt: p.createdAt.UTC().Format(time.RFC3339Nano),
		Type:      p.typ,
		Object:    p.object,
		WebhookID: webhookID,
	})
	return b
}

// queuedEvent is an event waiting in a webhook's forming package.
type queuedEvent struct {
	id        string
	createdAt time.Time
	raw       []byte
}

// pkg is a cut package: its bytes never change, retries resend them.
type pkg struct {
	body     []byte
	eventIDs []string
	attempts int
}

// DeliveryStats describes a webhook's delivery state.
type DeliveryStats struct {
	// Packages and Events count what the receiver acknowledged with 200.
	Packages int
	Events   int
	// Attempts counts POSTs of queued packages; Failures those not
	// answered 200 (transport errors included).
	Attempts int
	Failures int
	// ConsecutiveFailures is the number of failed attempts of the package
	// at the head of the queue; Backoff the (scaled) wait before its next
	// attempt. Both are 0 when nothing is being retried.
	ConsecutiveFailures int
	Backoff             time.Duration
	// QueuedPackages are cut and not yet delivered (the head included);
	// PendingEvents are collected into the package being formed.
	QueuedPackages int
	PendingEvents  int
	// Sending is true while a queued package is being posted: disabling
	// or editing the webhook does not stop an attempt under way.
	Sending bool
	// TestAttempts counts packages sent by POST /webhooks/{id}/test.
	TestAttempts int
	// LastStatus is the status of the last attempt (0 on a transport
	// error, then LastError says why).
	LastStatus int
	LastError  string
}

// DeliveryAttempt describes one POST of a package, for
// WithDeliveryObserver.
type DeliveryAttempt struct {
	WebhookID string
	ClientID  string
	URL       string
	// Attempt numbers the attempts of this package, from 1.
	Attempt int
	// Status is the receiver's status code, 0 on a transport error (Err).
	Status int
	Err    error
	// Delivered is true when the receiver answered 200.
	Delivered bool
	// Test marks the package of POST /webhooks/{id}/test.
	Test bool
	// Body is the package as sent; it must not be modified.
	Body     []byte
	EventIDs []string
	// Backoff is the wait before the next attempt after a failure.
	Backoff time.Duration
	Time    time.Time
}

// deliverer owns one webhook's packaging and delivery. Its fields are
// guarded by Server.mu; its goroutine is run.
type deliverer struct {
	s      *Server
	wh     *webhook
	ctx    context.Context
	cancel context.CancelFunc
	wakeC  chan struct{}

	pending     []queuedEvent
	pendingSize int       // body size of pending as a package
	cutAt       time.Time // when pending must be cut (real time)
	queue       []*pkg
	retryAt     time.Time
	stats       DeliveryStats
}

// startDeliverer makes wh's deliverer and starts its goroutine unless the
// server is closed. s.mu must be held.
func (s *Server) startDeliverer(wh *webhook) *deliverer {
	ctx, cancel := context.WithCancel(s.ctx)
	d := &deliverer{s: s, wh: wh, ctx: ctx, cancel: cancel, wakeC: make(chan struct{}, 1)}
	s.deliverers[wh.ID] = d
	if s.closed {
		cancel()
		return d
	}
	s.wg.Add(1)
	go d.run()
	return d
}

// wake makes the goroutine re-examine its state.
func (d *deliverer) wake() {
	select {
	case d.wakeC <- struct{}{}:
	default:
	}
}

// stop ends delivery and drops the queue. s.mu must be held.
func (d *deliverer) stop() {
	d.cancel()
	d.pending, d.queue = nil, nil
	d.stats.ConsecutiveFailures, d.stats.Backoff = 0, 0
}

// add appends an event to the forming package, cutting by size. s.mu must
// be held.
func (d *deliverer) add(p preparedEvent) {
	raw := p.encode(d.wh.ID)
	limit := d.wh.Config.MaxPackageSize
	if len(d.pending) > 0 && d.pendingSize+1+len(raw) > limit {
		d.cut()
	}
	if len(d.pending) == 0 {
		d.pendingSize = len(`{"payload":[]}`)
		delay := time.Duration(float64(parseDelay(d.wh.Config.Delay)) * d.s.cfg.delayScale)
		d.cutAt = time.Now().Add(delay)
	} else {
		d.pendingSize++ // comma
	}
	d.pending = append(d.pending, queuedEvent{id: p.id, createdAt: p.createdAt, raw: raw})
	d.pendingSize += len(raw)
	if d.pendingSize >= limit {
		d.cut() // full, or a single event larger than the limit: alone
	}
}

// cut turns the forming package into a queued one, its events sorted by
// created_at. s.mu must be held.
func (d *deliverer) cut() {
	if len(d.pending) == 0 {
		return
	}
	evs := d.pending
	d.pending = nil
	slices.SortStableFunc(evs, func(a, b queuedEvent) int { return a.createdAt.Compare(b.createdAt) })
	var b bytes.Buffer
	b.Grow(d.pendingSize)
	b.WriteString(`{"payload":[`)
	ids := make([]string, len(evs))
	for i, e := range evs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(e.raw)
		ids[i] = e.id
	}
	b.WriteString(`]}`)
	d.queue = append(d.queue, &pkg{body: b.Bytes(), eventIDs: ids})
}

// plan is one attempt to make, taken under the lock.
type plan struct {
	p         *pkg
	url       string
	webhookID string
	clientID  string
}

// next cuts a due package and returns the attempt to make now, or when to
// look again (zero: only when woken). ok is false once stopped.
func (d *deliverer) next() (pl *plan, at time.Time, ok bool) {
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	if d.ctx.Err() != nil {
		return nil, time.Time{}, false
	}
	now := time.Now()
	if len(d.pending) > 0 && !now.Before(d.cutAt) {
		d.cut()
	}
	if len(d.pending) > 0 {
		at = d.cutAt
	}
	if len(d.queue) > 0 && d.wh.Enabled {
		if now.Before(d.retryAt) {
			if at.IsZero() || d.retryAt.Before(at) {
				at = d.retryAt
			}
		} else {
			d.stats.Sending = true
			return &plan{p: d.queue[0], url: d.wh.URL, webhookID: d.wh.ID, clientID: d.wh.clientID}, time.Time{}, true
		}
	}
	return nil, at, true
}

// run delivers the webhook's packages one at a time, in order, until the
// webhook is deleted or the server closed.
func (d *deliverer) run() {
	defer d.s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		pl, at, ok := d.next()
		if !ok {
			return
		}
		if pl != nil {
			d.attempt(pl)
			continue
		}
		var tc <-chan time.Time
		if !at.IsZero() {
			timer.Reset(time.Until(at))
			tc = timer.C
		}
		select {
		case <-d.ctx.Done():
			return
		case <-d.wakeC:
		case <-tc:
		}
	}
}

// backoff is the wait after the n-th consecutive failure: 1, 2, 3, 5, 8 …
// seconds, at most 600, scaled.
func (s *Server) backoff(n int) time.Duration {
	a, b := 1, 2
	for i := 1; i < n && a < maxBackoff; i++ {
		a, b = b, a+b
	}
	return time.Duration(float64(min(a, maxBackoff)) * float64(time.Second) * s.cfg.backoffScale)
}

func (d *deliverer) attempt(pl *plan) {
	status, err := d.s.post(d.ctx, pl.url, pl.p.body)
	d.s.mu.Lock()
	d.stats.Sending = false
	if d.ctx.Err() != nil {
		d.s.mu.Unlock()
		return // deleted or closed meanwhile: the attempt does not count
	}
	delivered := err == nil && status == http.StatusOK
	pl.p.attempts++
	st := &d.stats
	st.Attempts++
	st.LastStatus = status
	st.LastError = ""
	if err != nil {
		st.LastError = err.Error()
	}
	if delivered {
		if len(d.queue) > 0 && d.queue[0] == pl.p {
			d.queue = d.queue[1:]
		}
		st.Packages++
		st.Events += len(pl.p.eventIDs)
		st.ConsecutiveFailures, st.Backoff = 0, 0
		d.retryAt = time.Time{}
	} else {
		st.Failures++
		st.ConsecutiveFailures++
		st.Backoff = d.s.backoff(st.ConsecutiveFailures)
		d.retryAt = time.Now().Add(st.Backoff)
	}
	a := DeliveryAttempt{
		WebhookID: pl.webhookID,
		ClientID:  pl.clientID,
		URL:       pl.url,
		Attempt:   pl.p.attempts,
		Status:    status,
		Err:       err,
		Delivered: delivered,
		Body:      pl.p.body,
		EventIDs:  pl.p.eventIDs,
		Backoff:   st.Backoff,
		Time:      d.s.now(),
	}
	d.s.mu.Unlock()

	ev := d.s.cfg.log.Debug()
	if !delivered {
		ev = d.s.cfg.log.Info()
	}
	ev.Str("webhook_id", a.WebhookID).Int("attempt", a.Attempt).Int("status", status).Err(err).
		Int("events", len(a.EventIDs)).Int64("backoff_ms", a.Backoff.Milliseconds()).Msg("emulator: delivery")
	if d.s.cfg.observer != nil {
		d.s.cfg.observer(a)
	}
}

// sendTest posts one WEBHOOK.TEST package now, once. s.mu must be held.
func (d *deliverer) sendTest() {
	if d.s.closed {
		return
	}
	obj, _ := json.Marshal(map[string]any{"id": d.wh.ID, "title": d.wh.Title, "url": d.wh.URL})
	ev := preparedEvent{id: uuid.NewString(), createdAt: d.s.now(), typ: "WEBHOOK.TEST", object: obj}
	body := append(append([]byte(`{"payload":[`), ev.encode(d.wh.ID)...), `]}`...)
	url, webhookID, clientID := d.wh.URL, d.wh.ID, d.wh.clientID
	d.s.wg.Add(1)
	go func() {
		defer d.s.wg.Done()
		status, err := d.s.post(d.ctx, url, body)
		if d.ctx.Err() != nil {
			return
		}
		d.s.mu.Lock()
		d.stats.TestAttempts++
		d.s.mu.Unlock()
		if d.s.cfg.observer != nil {
			d.s.cfg.observer(DeliveryAttempt{
				WebhookID: webhookID, ClientID: clientID, URL: url, Attempt: 1,
				Status: status, Err: err, Delivered: err == nil && status == http.StatusOK,
				Test: true, Body: body, EventIDs: []string{ev.id}, Time: d.s.now(),
			})
		}
	}()
}

// post sends one signed package and returns the receiver's status.
func (s *Server) post(ctx context.Context, url string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, v := range s.cfg.extraHeaders {
		req.Header[k] = slices.Clone(v)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := s.SignDelivery(req, body); err != nil {
		return 0, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// skipHeader reports header names Upvest's signer leaves out.
func skipHeader(lname string) bool {
	switch lname {
	case "signature", "signature-input":
		return true
	}
	for _, p := range []string{"cf-", "cdn-", "cookie", "x-"} {
		if strings.HasPrefix(lname, p) {
			return true
		}
	}
	return false
}

// SignDelivery signs req, whose body is body, exactly as Upvest signs a
// webhook delivery, with the current signing key: it covers every header
// already on req (lower-cased, in Go's random map order, skipping names
// starting with cf-, cdn-, cookie and x-), then @method and @path, then
// sets and covers Digest: SHA-256=<base64>, then @query if the URL has
// one; Signature-Input lists the names quoted with keyid, created, nonce
// (10 digits) and expires (created + 60 s); the base lines are unquoted
// (draft-06, "@method: POST"); the signature is ECDSA P-521 over SHA-512,
// ASN.1 DER. Tests can use it to send hand-made, validly signed packages.
func (s *Server) SignDelivery(req *http.Request, body []byte) error {
	var comps []string
	for name := range req.Header {
		if l := strings.ToLower(name); !skipHeader(l) {
			comps = append(comps, l)
		}
	}
	comps = append(comps, "@method", "@path")
	req.Header.Set("Digest", httpsig.Digest(body))
	comps = append(comps, "digest")
	if req.URL.RawQuery != "" {
		comps = append(comps, "@query")
	}
	k := s.currentKey()
	signer := httpsig.Signer{Key: k.key, KeyID: k.kid, Style: httpsig.Unquoted, Now: s.now}
	if err := signer.Sign(req, comps); err != nil {
		return fmt.Errorf("emulator: signing delivery: %w", err)
	}
	return nil
}

// Publish offers events to every enabled subscription of the tenant whose
// type[] holds the event's family or ALL. A disabled subscription is not
// offered the events, now or later. Each subscription collects events into
// a package until its config.delay has passed since the package's first
// event or the next event would push the body over config.max_package_size.
func (s *Server) Publish(clientID string, events ...Event) error {
	prepared := make([]preparedEvent, len(events))
	now := s.now()
	for i, e := range events {
		if e.Type == "" {
			return errors.New("emulator: event without type")
		}
		p := preparedEvent{id: e.ID, createdAt: e.CreatedAt, typ: e.Type, family: e.Family()}
		if p.id == "" {
			p.id = uuid.NewString()
		}
		if p.createdAt.IsZero() {
			p.createdAt = now
		}
		switch o := e.Object.(type) {
		case json.RawMessage:
			p.object = o
		default:
			b, err := json.Marshal(o)
			if err != nil {
				return fmt.Errorf("emulator: event %s object: %w", p.id, err)
			}
			p.object = b
		}
		prepared[i] = p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tenants[clientID] == nil {
		return fmt.Errorf("%w: %s", ErrUnknownTenant, clientID)
	}
	for _, wh := range s.webhooks {
		if wh.clientID != clientID || !wh.Enabled {
			continue
		}
		offered := false
		for _, p := range prepared {
			if slices.Contains(wh.Type, "ALL") || slices.Contains(wh.Type, p.family) {
				wh.d.add(p)
				offered = true
			}
		}
		if offered {
			wh.d.wake()
		}
	}
	return nil
}

// Delivered returns a webhook's delivery stats (also after it was
// deleted); the zero value for an unknown id.
func (s *Server) Delivered(webhookID string) DeliveryStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deliverers[webhookID]
	if d == nil {
		return DeliveryStats{}
	}
	st := d.stats
	st.QueuedPackages = len(d.queue)
	st.PendingEvents = len(d.pending)
	return st
}

// WaitDelivered polls until at least events events of the webhook were
// acknowledged, or ctx ends.
func (s *Server) WaitDelivered(ctx context.Context, webhookID string, events int) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if s.Delivered(webhookID).Events >= events {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("emulator: %d of %d events delivered: %w", s.Delivered(webhookID).Events, events, ctx.Err())
		case <-t.C:
		}
	}
}

// PublishEvery publishes g.Next() for the tenant every interval until ctx
// ends (then it returns nil) or Publish fails. It runs in the caller's
// goroutine.
func (s *Server) PublishEvery(ctx context.Context, clientID string, interval time.Duration, g *Generator) error {
	if interval <= 0 {
		return errors.New("emulator: PublishEvery needs a positive interval")
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.ctx.Done():
			return nil
		case <-t.C:
			if err := s.Publish(clientID, g.Next()...); err != nil {
				return err
			}
		}
	}
}
