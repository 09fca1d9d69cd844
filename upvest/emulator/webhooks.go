package emulator

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Sentinel errors of the inspection and manipulation methods.
var (
	ErrUnknownTenant  = errors.New("emulator: unknown tenant")
	ErrUnknownWebhook = errors.New("emulator: unknown webhook")
)

// Defaults Upvest applies when a subscription omits them (inferred: the API
// reference's examples use 5s; 1 MiB is the largest package allowed).
const (
	DefaultDelay          = "5s"
	DefaultMaxPackageSize = 1048576
	minPackageSize        = 100
	maxURLLength          = 1000
	maxListLimit          = 1000
	defaultListLimit      = 100
)

// Webhook is a webhook subscription as the API returns it.
type Webhook struct {
	ID        string        `json:"id"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
	Title     string        `json:"title"`
	URL       string        `json:"url"`
	Type      []string      `json:"type"`
	Enabled   bool          `json:"enabled"`
	Config    WebhookConfig `json:"config"`
}

// WebhookConfig is a subscription's batching configuration.
type WebhookConfig struct {
	// Delay is the maximum collection time of a package, ^[1-9][0-9]?[sm]$.
	Delay string `json:"delay"`
	// MaxPackageSize bounds a package body in bytes (100…1048576); a single
	// larger event is still sent, alone.
	MaxPackageSize int `json:"max_package_size"`
}

func (w Webhook) clone() Webhook {
	w.Type = slices.Clone(w.Type)
	return w
}

// webhook is the server's record of a subscription. Guarded by Server.mu.
type webhook struct {
	Webhook
	clientID string
	d        *deliverer
}

var (
	titleRE = regexp.MustCompile(`^[a-zA-Z0-9 ()\[\]{}.-]{1,32}$`)
	delayRE = regexp.MustCompile(`^[1-9][0-9]?[sm]$`)
)

// validate returns what is wrong with w, or "".
func validate(w Webhook) string {
	if !titleRE.MatchString(w.Title) {
		return fmt.Sprintf(`title must match ^[a-zA-Z0-9 ()\[\]{}.-]{1,32}$, got %q`, w.Title)
	}
	if d := validateURL(w.URL); d != "" {
		return d
	}
	if len(w.Type) == 0 {
		return "type must list at least one event family"
	}
	for _, t := range w.Type {
		if !isFamily(t) {
			return fmt.Sprintf("type %q is not a known event family (one of %s)", t, strings.Join(families(), ", "))
		}
	}
	if !delayRE.MatchString(w.Config.Delay) {
		return fmt.Sprintf("config.delay must match ^[1-9][0-9]?[sm]$, got %q", w.Config.Delay)
	}
	if n := w.Config.MaxPackageSize; n < minPackageSize || n > DefaultMaxPackageSize {
		return fmt.Sprintf("config.max_package_size must be between %d and %d, got %d", minPackageSize, DefaultMaxPackageSize, n)
	}
	return ""
}

func validateURL(raw string) string {
	if raw == "" {
		return "url is required"
	}
	if len(raw) > maxURLLength {
		return fmt.Sprintf("url must be at most %d characters, got %d", maxURLLength, len(raw))
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Hostname() == "" {
		return fmt.Sprintf("url must be an absolute https URL, got %q", raw)
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	loopback := strings.EqualFold(host, "localhost") || (ip != nil && ip.IsLoopback())
	switch u.Scheme {
	case "https":
		if ip != nil && !loopback {
			return "url host must be a DNS name, not an IP address"
		}
	case "http":
		if !loopback {
			return "url must use https (the emulator accepts plain http only for loopback hosts)"
		}
	default:
		return fmt.Sprintf("url must use https, got scheme %q", u.Scheme)
	}
	return ""
}

// delay parses a valid config.delay.
func parseDelay(s string) time.Duration {
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n <= 0 {
		n = 5
	}
	if strings.HasSuffix(s, "m") {
		return time.Duration(n) * time.Minute
	}
	return time.Duration(n) * time.Second
}

// webhookInput is the body of POST and PATCH /webhooks; nil means absent.
type webhookInput struct {
	Title   *string   `json:"title"`
	URL     *string   `json:"url"`
	Type    *[]string `json:"type"`
	Enabled *bool     `json:"enabled"`
	Config  *struct {
		Delay          *string `json:"delay"`
		MaxPackageSize *int    `json:"max_package_size"`
	} `json:"config"`
}

func decodeInput(c *call) (webhookInput, *result) {
	var in webhookInput
	mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if mt != "application/json" {
		r := problemResult(http.StatusUnsupportedMediaType, "content-type must be application/json")
		return in, &r
	}
	if len(bytes.TrimSpace(c.body)) == 0 || bytes.TrimSpace(c.body)[0] != '{' {
		r := problemResult(http.StatusBadRequest, "body must be a JSON object")
		return in, &r
	}
	if err := json.Unmarshal(c.body, &in); err != nil {
		r := problemResult(http.StatusBadRequest, "malformed JSON body: %v", err)
		return in, &r
	}
	return in, nil
}

// apply copies the fields present in in onto w.
func (in webhookInput) apply(w *Webhook) {
	if in.Title != nil {
		w.Title = *in.Title
	}
	if in.URL != nil {
		w.URL = *in.URL
	}
	if in.Type != nil {
		w.Type = slices.Clone(*in.Type)
	}
	if in.Config != nil {
		if in.Config.Delay != nil {
			w.Config.Delay = *in.Config.Delay
		}
		if in.Config.MaxPackageSize != nil {
			w.Config.MaxPackageSize = *in.Config.MaxPackageSize
		}
	}
}

// handleCreateWebhook is POST /webhooks. The subscription is created
// disabled whatever the body says; an omitted type is ["ALL"], an omitted
// config field its default.
func (s *Server) handleCreateWebhook(c *call) result {
	in, bad := decodeInput(c)
	if bad != nil {
		return *bad
	}
	if in.Title == nil {
		return problemResult(http.StatusBadRequest, "title is required")
	}
	if in.URL == nil {
		return problemResult(http.StatusBadRequest, "url is required")
	}
	now := s.now()
	w := Webhook{
		ID:        uuid.NewString(),
		CreatedAt: now,
		UpdatedAt: now,
		Type:      []string{"ALL"},
		Config:    WebhookConfig{Delay: DefaultDelay, MaxPackageSize: DefaultMaxPackageSize},
	}
	in.apply(&w)
	if d := validate(w); d != "" {
		return problemResult(http.StatusBadRequest, "%s", d)
	}
	s.mu.Lock()
	s.addWebhook(c.tenant.clientID, w)
	s.mu.Unlock()
	return jsonResult(http.StatusCreated, w)
}

// addWebhook stores w and starts its delivery goroutine. s.mu must be held.
func (s *Server) addWebhook(clientID string, w Webhook) {
	wh := &webhook{Webhook: w.clone(), clientID: clientID}
	wh.d = s.startDeliverer(wh)
	s.webhooks[w.ID] = wh
}

// lookup returns the tenant's webhook id. s.mu must be held.
func (s *Server) lookup(clientID, id string) *webhook {
	wh := s.webhooks[id]
	if wh == nil || wh.clientID != clientID {
		return nil
	}
	return wh
}

// handleGetWebhook is GET /webhooks/{id}.
func (s *Server) handleGetWebhook(c *call) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	wh := s.lookup(c.tenant.clientID, c.r.PathValue("id"))
	if wh == nil {
		return problemResult(http.StatusNotFound, "webhook %s not found", c.r.PathValue("id"))
	}
	return jsonResult(http.StatusOK, wh.Webhook)
}

// handlePatchWebhook is PATCH /webhooks/{id}: only the fields present
// change (config fields one by one).
func (s *Server) handlePatchWebhook(c *call) result {
	in, bad := decodeInput(c)
	if bad != nil {
		return *bad
	}
	id := c.r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	wh := s.lookup(c.tenant.clientID, id)
	if wh == nil {
		return problemResult(http.StatusNotFound, "webhook %s not found", id)
	}
	w := wh.Webhook.clone()
	in.apply(&w)
	if in.Enabled != nil {
		w.Enabled = *in.Enabled
	}
	if d := validate(w); d != "" {
		return problemResult(http.StatusBadRequest, "%s", d)
	}
	w.UpdatedAt = s.now()
	wh.Webhook = w
	wh.d.wake()
	return jsonResult(http.StatusOK, w)
}

// handleDeleteWebhook is DELETE /webhooks/{id}; the webhook's queue is
// dropped.
func (s *Server) handleDeleteWebhook(c *call) result {
	id := c.r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	wh := s.lookup(c.tenant.clientID, id)
	if wh == nil {
		return problemResult(http.StatusNotFound, "webhook %s not found", id)
	}
	s.deleteWebhook(wh)
	return result{status: http.StatusNoContent}
}

// deleteWebhook removes wh and stops its delivery. s.mu must be held.
func (s *Server) deleteWebhook(wh *webhook) {
	delete(s.webhooks, wh.ID)
	wh.d.stop()
}

// handleTestWebhook is POST /webhooks/{id}/test: 202, then one package with
// a single WEBHOOK.TEST event is sent at once, outside the webhook's queue
// (so neither a disabled webhook nor a blocked queue holds it back), with
// one attempt and no retry.
func (s *Server) handleTestWebhook(c *call) result {
	id := c.r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	wh := s.lookup(c.tenant.clientID, id)
	if wh == nil {
		return problemResult(http.StatusNotFound, "webhook %s not found", id)
	}
	wh.d.sendTest()
	return result{status: http.StatusAccepted}
}

// handleListWebhooks is GET /webhooks?offset=&limit=&sort=&order=.
func (s *Server) handleListWebhooks(c *call) result {
	q := c.r.URL.Query()
	offset, limit := 0, defaultListLimit
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return problemResult(http.StatusBadRequest, "offset must be a non-negative integer, got %q", v)
		}
		offset = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			return problemResult(http.StatusBadRequest, "limit must be an integer from 1 to %d, got %q", maxListLimit, v)
		}
		limit = n
	}
	sortBy := cmp.Or(q.Get("sort"), "id")
	less, ok := webhookOrder(sortBy)
	if !ok {
		return problemResult(http.StatusBadRequest, "sort must be one of id, created_at, updated_at, title, url, enabled; got %q", sortBy)
	}
	order := strings.ToUpper(cmp.Or(q.Get("order"), "ASC"))
	if order != "ASC" && order != "DESC" {
		return problemResult(http.StatusBadRequest, "order must be ASC or DESC, got %q", q.Get("order"))
	}

	all := s.Webhooks(c.tenant.clientID)
	slices.SortStableFunc(all, func(a, b Webhook) int {
		if n := less(a, b); n != 0 {
			if order == "DESC" {
				return -n
			}
			return n
		}
		return strings.Compare(a.ID, b.ID)
	})
	page := []Webhook{}
	if offset < len(all) {
		page = all[offset:min(len(all), offset+limit)]
	}
	type meta struct {
		Offset     int    `json:"offset"`
		Limit      int    `json:"limit"`
		Count      int    `json:"count"`
		TotalCount int    `json:"total_count"`
		Sort       string `json:"sort"`
		Order      string `json:"order"`
	}
	return jsonResult(http.StatusOK, struct {
		Meta meta      `json:"meta"`
		Data []Webhook `json:"data"`
	}{meta{offset, limit, len(page), len(all), sortBy, order}, page})
}

func webhookOrder(field string) (func(a, b Webhook) int, bool) {
	switch field {
	case "id":
		return func(a, b Webhook) int { return strings.Compare(a.ID, b.ID) }, true
	case "created_at":
		return func(a, b Webhook) int { return a.CreatedAt.Compare(b.CreatedAt) }, true
	case "updated_at":
		return func(a, b Webhook) int { return a.UpdatedAt.Compare(b.UpdatedAt) }, true
	case "title":
		return func(a, b Webhook) int { return strings.Compare(a.Title, b.Title) }, true
	case "url":
		return func(a, b Webhook) int { return strings.Compare(a.URL, b.URL) }, true
	case "enabled":
		return func(a, b Webhook) int {
			switch {
			case a.Enabled == b.Enabled:
				return 0
			case b.Enabled:
				return -1
			}
			return 1
		}, true
	}
	return nil, false
}

// Webhooks returns the tenant's subscriptions, oldest first.
func (s *Server) Webhooks(clientID string) []Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Webhook
	for _, wh := range s.webhooks {
		if wh.clientID == clientID {
			out = append(out, wh.Webhook.clone())
		}
	}
	slices.SortFunc(out, func(a, b Webhook) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out
}

// Webhook returns the subscription id of any tenant.
func (s *Server) Webhook(id string) (Webhook, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wh := s.webhooks[id]
	if wh == nil {
		return Webhook{}, false
	}
	return wh.Webhook.clone(), true
}

// SetWebhookEnabled enables or disables a subscription behind the relay's
// back, as an Upvest operator could.
func (s *Server) SetWebhookEnabled(id string, enabled bool) error {
	return s.EditWebhook(id, func(w *Webhook) { w.Enabled = enabled })
}

// EditWebhook changes a subscription behind the relay's back: edit gets a
// copy to modify (ID and CreatedAt are kept); the result must be valid.
// UpdatedAt is set to now.
func (s *Server) EditWebhook(id string, edit func(*Webhook)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	wh := s.webhooks[id]
	if wh == nil {
		return fmt.Errorf("%w: %s", ErrUnknownWebhook, id)
	}
	w := wh.Webhook.clone()
	edit(&w)
	w.ID, w.CreatedAt = wh.ID, wh.CreatedAt
	if d := validate(w); d != "" {
		return fmt.Errorf("emulator: invalid webhook: %s", d)
	}
	w.UpdatedAt = s.now()
	wh.Webhook = w
	wh.d.wake()
	return nil
}

// DeleteWebhookBehindBack deletes a subscription without an API call,
// dropping its queue.
func (s *Server) DeleteWebhookBehindBack(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	wh := s.webhooks[id]
	if wh == nil {
		return fmt.Errorf("%w: %s", ErrUnknownWebhook, id)
	}
	s.deleteWebhook(wh)
	return nil
}

// CreateWebhook creates a subscription for a tenant without an API call,
// validated and with defaults as POST /webhooks would, but with Enabled
// kept as given (to set up a scenario). ID and timestamps are assigned.
func (s *Server) CreateWebhook(clientID string, w Webhook) (Webhook, error) {
	now := s.now()
	w = w.clone()
	w.ID, w.CreatedAt, w.UpdatedAt = uuid.NewString(), now, now
	if w.Type == nil {
		w.Type = []string{"ALL"}
	}
	w.Config.Delay = cmp.Or(w.Config.Delay, DefaultDelay)
	w.Config.MaxPackageSize = cmp.Or(w.Config.MaxPackageSize, DefaultMaxPackageSize)
	if d := validate(w); d != "" {
		return Webhook{}, fmt.Errorf("emulator: invalid webhook: %s", d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tenants[clientID] == nil {
		return Webhook{}, fmt.Errorf("%w: %s", ErrUnknownTenant, clientID)
	}
	s.addWebhook(clientID, w)
	return w.clone(), nil
}

// idemKey identifies an idempotency key of one tenant.
type idemKey struct{ clientID, key string }

type idemEntry struct {
	fingerprint [32]byte
	res         result
}

// idempotent runs h once per idempotency key: a request repeating a key
// with the same method, path and body gets the first (2xx) answer again
// without effect; the same key on a different request is refused with 422.
// Answers other than 2xx are not remembered, so the request may be retried.
func (s *Server) idempotent(c *call, h func(*call) result) result {
	key := c.r.Header.Get("Idempotency-Key")
	if _, err := uuid.Parse(key); err != nil {
		return problemResult(http.StatusBadRequest, "idempotency-key must be a UUID, got %q", key)
	}
	fp := sha256.Sum256([]byte(c.r.Method + " " + c.r.URL.RequestURI() + "\n" + string(c.body)))
	k := idemKey{c.tenant.clientID, strings.ToLower(key)}

	s.idemMu.Lock()
	defer s.idemMu.Unlock()
	s.mu.Lock()
	e := s.idem[k]
	s.mu.Unlock()
	if e != nil {
		if e.fingerprint != fp {
			return problemResult(http.StatusUnprocessableEntity, "idempotency-key %s was already used for a different request", key)
		}
		return e.res
	}
	res := h(c)
	if res.status >= 200 && res.status < 300 {
		s.mu.Lock()
		s.idem[k] = &idemEntry{fingerprint: fp, res: res}
		s.mu.Unlock()
	}
	return res
}
