package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
)

func TestCreateWebhook(t *testing.T) {
	s := newServer(t)
	ten := newTenant(t, s)
	c := newClient(t, s, ten)

	w := c.create(t, map[string]any{"title": "upvest-relay", "url": "https://relay.example.com/webhooks/upvest", "enabled": true})
	if _, err := uuid.Parse(w.ID); err != nil {
		t.Errorf("id %q is not a UUID", w.ID)
	}
	if w.Enabled {
		t.Error("webhook created enabled, Upvest creates them disabled")
	}
	if !slices.Equal(w.Type, []string{"ALL"}) || w.Config != (WebhookConfig{Delay: "5s", MaxPackageSize: 1048576}) {
		t.Errorf("defaults: type %v config %+v", w.Type, w.Config)
	}
	if w.CreatedAt.IsZero() || !w.UpdatedAt.Equal(w.CreatedAt) {
		t.Errorf("timestamps %v %v", w.CreatedAt, w.UpdatedAt)
	}

	var got Webhook
	if resp := c.json(http.MethodGet, "/webhooks/"+w.ID, nil, &got); resp.status != http.StatusOK {
		t.Fatalf("get: %d %s", resp.status, resp.body)
	}
	if got.ID != w.ID || got.Title != "upvest-relay" || got.URL != w.URL {
		t.Errorf("get %+v, want %+v", got, w)
	}
}

func TestCreateWebhookValidation(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s, newTenant(t, s))
	ok := func(mod func(m map[string]any)) map[string]any {
		m := map[string]any{"title": "relay", "url": "https://relay.example.com/hook"}
		mod(m)
		return m
	}
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		detail string
	}{
		{"all fields", ok(func(m map[string]any) {
			m["type"] = []string{"ORDER", "EXECUTION"}
			m["config"] = map[string]any{"delay": "99m", "max_package_size": 100}
		}), 201, ""},
		{"title with allowed punctuation", ok(func(m map[string]any) { m["title"] = "relay (prod) [eu]{1}.a-b" }), 201, ""},
		{"loopback http", ok(func(m map[string]any) { m["url"] = "http://127.0.0.1:8080/webhooks/upvest" }), 201, ""},
		{"localhost http", ok(func(m map[string]any) { m["url"] = "http://localhost:8080/x" }), 201, ""},
		{"loopback https ip", ok(func(m map[string]any) { m["url"] = "https://127.0.0.1:8443/x" }), 201, ""},
		{"no title", ok(func(m map[string]any) { delete(m, "title") }), 400, "title is required"},
		{"title too long", ok(func(m map[string]any) { m["title"] = strings.Repeat("a", 33) }), 400, "title must match"},
		{"title bad char", ok(func(m map[string]any) { m["title"] = "relay/prod" }), 400, "title must match"},
		{"no url", ok(func(m map[string]any) { delete(m, "url") }), 400, "url is required"},
		{"plain http", ok(func(m map[string]any) { m["url"] = "http://relay.example.com/hook" }), 400, "must use https"},
		{"ftp", ok(func(m map[string]any) { m["url"] = "ftp://relay.example.com/hook" }), 400, "must use https"},
		{"relative", ok(func(m map[string]any) { m["url"] = "/hook" }), 400, "absolute https"},
		{"ip host", ok(func(m map[string]any) { m["url"] = "https://10.1.2.3/hook" }), 400, "DNS name"},
		{"url too long", ok(func(m map[string]any) { m["url"] = "https://relay.example.com/" + strings.Repeat("a", 1000) }), 400, "at most 1000"},
		{"unknown type", ok(func(m map[string]any) { m["type"] = []string{"ORDER", "SPACESHIP"} }), 400, `type "SPACESHIP"`},
		{"empty type", ok(func(m map[string]any) { m["type"] = []string{} }), 400, "at least one"},
		{"delay zero", ok(func(m map[string]any) { m["config"] = map[string]any{"delay": "0s"} }), 400, "config.delay"},
		{"delay hours", ok(func(m map[string]any) { m["config"] = map[string]any{"delay": "1h"} }), 400, "config.delay"},
		{"delay three digits", ok(func(m map[string]any) { m["config"] = map[string]any{"delay": "100s"} }), 400, "config.delay"},
		{"size too small", ok(func(m map[string]any) { m["config"] = map[string]any{"max_package_size": 99} }), 400, "max_package_size"},
		{"size too large", ok(func(m map[string]any) { m["config"] = map[string]any{"max_package_size": 1048577} }), 400, "max_package_size"},
		{"size not integer", ok(func(m map[string]any) { m["config"] = map[string]any{"max_package_size": 100.5} }), 400, "malformed JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *c
			c.t = t
			resp := c.json(http.MethodPost, "/webhooks", tc.body, nil)
			if resp.status != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.status, resp.body)
			}
			if tc.status >= 400 {
				if p := resp.problem(t); !strings.Contains(p.Detail, tc.detail) {
					t.Errorf("detail %q, want it to contain %q", p.Detail, tc.detail)
				}
			}
		})
	}
}

func TestPatchDeleteWebhook(t *testing.T) {
	s := newServer(t)
	ten := newTenant(t, s)
	c := newClient(t, s, ten)
	w := c.create(t, map[string]any{"title": "relay", "url": "https://relay.example.com/hook",
		"config": map[string]any{"delay": "2s", "max_package_size": 2048}})

	var got Webhook
	if resp := c.json(http.MethodPatch, "/webhooks/"+w.ID, map[string]any{"enabled": true, "config": map[string]any{"delay": "1s"}}, &got); resp.status != http.StatusOK {
		t.Fatalf("patch: %d %s", resp.status, resp.body)
	}
	want := w
	want.Enabled, want.Config.Delay = true, "1s"
	want.UpdatedAt = got.UpdatedAt
	if !got.UpdatedAt.After(w.UpdatedAt) && !got.UpdatedAt.Equal(w.UpdatedAt) {
		t.Errorf("updated_at went back: %v < %v", got.UpdatedAt, w.UpdatedAt)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after patch %+v, want %+v", got, want)
	}
	if resp := c.json(http.MethodPatch, "/webhooks/"+w.ID, map[string]any{"type": []string{"NOPE"}}, nil); resp.status != http.StatusBadRequest {
		t.Errorf("invalid patch: %d, want 400", resp.status)
	}
	if sw, _ := s.Webhook(w.ID); !slices.Equal(sw.Type, []string{"ALL"}) {
		t.Errorf("invalid patch changed type to %v", sw.Type)
	}

	resp := c.json(http.MethodDelete, "/webhooks/"+w.ID, nil, nil)
	if resp.status != http.StatusNoContent || len(resp.body) != 0 {
		t.Fatalf("delete: %d %q", resp.status, resp.body)
	}
	for _, m := range []string{http.MethodGet, http.MethodDelete, http.MethodPatch} {
		var body any
		if m == http.MethodPatch {
			body = map[string]any{"enabled": false}
		}
		if resp := c.json(m, "/webhooks/"+w.ID, body, nil); resp.status != http.StatusNotFound {
			t.Errorf("%s after delete: %d, want 404", m, resp.status)
		}
	}
}

func TestTenantIsolation(t *testing.T) {
	s := newServer(t)
	a, b := newClient(t, s, newTenant(t, s)), newClient(t, s, newTenant(t, s))
	w := a.create(t, map[string]any{"title": "a", "url": "https://a.example.com/hook"})

	for _, m := range []string{http.MethodGet, http.MethodPatch, http.MethodDelete} {
		var body any
		if m == http.MethodPatch {
			body = map[string]any{"enabled": true}
		}
		if resp := b.json(m, "/webhooks/"+w.ID, body, nil); resp.status != http.StatusNotFound {
			t.Errorf("%s of another tenant's webhook: %d, want 404", m, resp.status)
		}
	}
	var list struct {
		Meta struct {
			TotalCount int `json:"total_count"`
		} `json:"meta"`
		Data []Webhook `json:"data"`
	}
	b.json(http.MethodGet, "/webhooks", nil, &list)
	if list.Meta.TotalCount != 0 || len(list.Data) != 0 {
		t.Errorf("tenant b sees %+v", list)
	}
	if sw, _ := s.Webhook(w.ID); sw.Enabled {
		t.Error("tenant b enabled tenant a's webhook")
	}
}

func TestListPaging(t *testing.T) {
	s := newServer(t)
	ten := newTenant(t, s)
	c := newClient(t, s, ten)
	for i := range 7 {
		c.create(t, map[string]any{"title": fmt.Sprintf("hook %d", i), "url": "https://relay.example.com/hook"})
	}
	type meta struct {
		Offset, Limit, Count int
		TotalCount           int `json:"total_count"`
		Sort, Order          string
	}
	type page struct {
		Meta meta      `json:"meta"`
		Data []Webhook `json:"data"`
	}
	seen := map[string]bool{}
	for _, tc := range []struct{ offset, count int }{{0, 3}, {3, 3}, {6, 1}, {9, 0}} {
		var p page
		path := fmt.Sprintf("/webhooks?offset=%d&limit=3", tc.offset)
		if resp := c.json(http.MethodGet, path, nil, &p); resp.status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, resp.status, resp.body)
		}
		want := meta{Offset: tc.offset, Limit: 3, Count: tc.count, TotalCount: 7, Sort: "id", Order: "ASC"}
		if p.Meta != want || len(p.Data) != tc.count {
			t.Errorf("%s: meta %+v with %d items, want %+v", path, p.Meta, len(p.Data), want)
		}
		for _, w := range p.Data {
			if seen[w.ID] {
				t.Errorf("%s repeats %s", path, w.ID)
			}
			seen[w.ID] = true
		}
	}
	if len(seen) != 7 {
		t.Errorf("pages covered %d webhooks, want 7", len(seen))
	}

	var p page
	c.json(http.MethodGet, "/webhooks?sort=title&order=desc", nil, &p)
	if p.Meta.Limit != 100 || len(p.Data) != 7 || p.Data[0].Title != "hook 6" || p.Data[6].Title != "hook 0" {
		t.Errorf("sorted by title desc: %+v", p)
	}
	if p.Data == nil {
		t.Error("data is null")
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "offset=-1", "sort=color", "order=up"} {
		if resp := c.json(http.MethodGet, "/webhooks?"+q, nil, nil); resp.status != http.StatusBadRequest {
			t.Errorf("?%s: %d, want 400", q, resp.status)
		}
	}
	var empty page
	newClient(t, s, newTenant(t, s)).json(http.MethodGet, "/webhooks", nil, &empty)
	if b, _ := json.Marshal(empty.Data); string(b) != "[]" {
		t.Errorf("empty list data %s, want []", b)
	}
}

func TestIdempotencyKey(t *testing.T) {
	s := newServer(t)
	ten := newTenant(t, s)
	c := newClient(t, s, ten)
	key := uuid.NewString()
	body := []byte(`{"title":"relay","url":"https://relay.example.com/hook"}`)

	first := c.do(req{method: http.MethodPost, path: "/webhooks", body: body, idemKey: key})
	second := c.do(req{method: http.MethodPost, path: "/webhooks", body: body, idemKey: key})
	if first.status != http.StatusCreated || second.status != http.StatusCreated || string(first.body) != string(second.body) {
		t.Fatalf("repeat: %d %s / %d %s", first.status, first.body, second.status, second.body)
	}
	if n := len(s.Webhooks(ten.ClientID)); n != 1 {
		t.Errorf("%d webhooks after a repeated POST, want 1", n)
	}
	other := c.do(req{method: http.MethodPost, path: "/webhooks", body: []byte(`{"title":"other","url":"https://relay.example.com/hook"}`), idemKey: key})
	if other.status != http.StatusUnprocessableEntity {
		t.Errorf("same key, other body: %d, want 422", other.status)
	}
	notUUID := c.do(req{method: http.MethodPost, path: "/webhooks", body: body, idemKey: "abc"})
	if notUUID.status != http.StatusBadRequest || !strings.Contains(notUUID.problem(t).Detail, "UUID") {
		t.Errorf("non-UUID key: %d %s", notUUID.status, notUUID.body)
	}
	// Another tenant may use the same key.
	if resp := newClient(t, s, newTenant(t, s)).do(req{method: http.MethodPost, path: "/webhooks", body: body, idemKey: key}); resp.status != http.StatusCreated {
		t.Errorf("other tenant, same key: %d", resp.status)
	}
}

func TestBehindTheBack(t *testing.T) {
	s := newServer(t)
	ten := newTenant(t, s)
	c := newClient(t, s, ten)
	w := c.create(t, map[string]any{"title": "relay", "url": "https://relay.example.com/hook"})

	if err := s.SetWebhookEnabled(w.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := s.EditWebhook(w.ID, func(w *Webhook) { w.Title, w.ID = "changed", "x" }); err != nil {
		t.Fatal(err)
	}
	var got Webhook
	c.json(http.MethodGet, "/webhooks/"+w.ID, nil, &got)
	if !got.Enabled || got.Title != "changed" || got.ID != w.ID {
		t.Errorf("after edits %+v", got)
	}
	if err := s.EditWebhook(w.ID, func(w *Webhook) { w.Config.Delay = "1h" }); err == nil {
		t.Error("EditWebhook accepted an invalid delay")
	}
	if err := s.DeleteWebhookBehindBack(w.ID); err != nil {
		t.Fatal(err)
	}
	if resp := c.json(http.MethodGet, "/webhooks/"+w.ID, nil, nil); resp.status != http.StatusNotFound {
		t.Errorf("get after behind-the-back delete: %d", resp.status)
	}
	if err := s.SetWebhookEnabled(w.ID, true); err == nil {
		t.Error("SetWebhookEnabled on a deleted webhook succeeded")
	}
	if s.CallCount("GET", "/webhooks/{id}") != 2 || s.CallCount("POST", "/webhooks") != 1 {
		t.Errorf("call counts get=%d post=%d", s.CallCount("GET", "/webhooks/{id}"), s.CallCount("POST", "/webhooks"))
	}
}

func TestUnknownEndpointAndAccept(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s, newTenant(t, s))
	resp := c.do(req{method: http.MethodGet, path: "/orders"})
	if resp.status != http.StatusNotFound || resp.problem(t).RequestID == "" {
		t.Errorf("unknown endpoint: %d %s", resp.status, resp.body)
	}
	resp = c.do(req{method: http.MethodGet, path: "/webhooks", preSign: func(r *http.Request) { r.Header.Set("Accept", "text/html") }})
	if resp.status != http.StatusNotAcceptable {
		t.Errorf("accept text/html: %d, want 406", resp.status)
	}
	if s.CallCount("", "") != 1 {
		t.Errorf("unknown-endpoint count %d", s.CallCount("", ""))
	}
}

func TestTestEndpoint(t *testing.T) {
	s := newServer(t)
	ten := newTenant(t, s)
	c := newClient(t, s, ten)
	rc := newReceiver(t, nil)
	w := c.create(t, map[string]any{"title": "relay", "url": rc.url()}) // disabled

	if resp := c.json(http.MethodPost, "/webhooks/"+w.ID+"/test", nil, nil); resp.status != http.StatusAccepted {
		t.Fatalf("test: %d %s", resp.status, resp.body)
	}
	testkit.Eventually(t, 10*time.Second, "test package", func() bool { return rc.count() == 1 })
	got := rc.requests()[0]
	verifyDelivery(t, mustJWKS(t, s), got)
	evs := decodePackage(t, got.body)
	if len(evs) != 1 || evs[0].Type != "WEBHOOK.TEST" || evs[0].WebhookID != w.ID {
		t.Errorf("test package %s", got.body)
	}
	testkit.Eventually(t, 10*time.Second, "test stats", func() bool { return s.Delivered(w.ID).TestAttempts == 1 })
	if resp := c.json(http.MethodPost, "/webhooks/"+uuid.NewString()+"/test", nil, nil); resp.status != http.StatusNotFound {
		t.Errorf("test of unknown webhook: %d", resp.status)
	}
}

func mustJWKS(t *testing.T, s *Server) []byte {
	t.Helper()
	b, err := s.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCreateWebhookDirect(t *testing.T) {
	s := newServer(t)
	ten := newTenant(t, s)
	w, err := s.CreateWebhook(ten.ClientID, Webhook{Title: "direct", URL: "https://x.example.com/", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if !w.Enabled || w.Config.Delay != DefaultDelay || w.CreatedAt.After(time.Now()) {
		t.Errorf("%+v", w)
	}
	if _, err := s.CreateWebhook("nobody", Webhook{Title: "x", URL: "https://x.example.com/"}); err == nil {
		t.Error("CreateWebhook for an unknown tenant succeeded")
	}
}
