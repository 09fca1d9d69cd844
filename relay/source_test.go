package relay_test

import (
	"bytes"
	"net/http"
	"net/netip"
	"testing"

	"github.com/upvest-relay/upvest-relay/relay"
)

func TestAllowedSources(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	upvest := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	tests := []struct {
		name    string
		opts    []relay.Option
		xff     []string
		want    int
		problem string
	}{
		{"any source by default", nil, nil, http.StatusOK, ""},
		{"loopback allowed", []relay.Option{relay.WithAllowedSources(loopback)}, nil, http.StatusOK, ""},
		{"loopback not allowed", []relay.Option{relay.WithAllowedSources(upvest)}, nil, http.StatusForbidden, "urn:upvest-relay:problem:source_not_allowed"},
		{"forwarded header from an untrusted peer is ignored", []relay.Option{relay.WithAllowedSources(upvest)}, []string{"203.0.113.7"}, http.StatusForbidden, "urn:upvest-relay:problem:source_not_allowed"},
		{"forwarded by a trusted proxy", []relay.Option{relay.WithAllowedSources(upvest), relay.WithTrustedProxies(loopback)}, []string{"198.51.100.1, 203.0.113.7"}, http.StatusOK, ""},
		{"right-most untrusted hop counts", []relay.Option{relay.WithAllowedSources(upvest), relay.WithTrustedProxies(loopback)}, []string{"203.0.113.7, 198.51.100.1"}, http.StatusForbidden, "urn:upvest-relay:problem:source_not_allowed"},
		{"broken forwarded chain", []relay.Option{relay.WithAllowedSources(upvest), relay.WithTrustedProxies(loopback)}, []string{"not-an-address"}, http.StatusForbidden, "urn:upvest-relay:problem:source_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, acceptAll, tt.opts...)
			req, err := http.NewRequest(http.MethodPost, f.http.URL+webhookPath, bytes.NewReader(pkg(event("s1", "ORDER.FILLED"))))
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range tt.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			r := send(t, req)
			if r.status != tt.want {
				t.Fatalf("status = %d (%s), want %d", r.status, r.body, tt.want)
			}
			if tt.problem != "" {
				if p := decodeProblem(t, r); p.Type != tt.problem {
					t.Errorf("problem type %q, want %q", p.Type, tt.problem)
				}
				if got := len(f.stored()); got != 0 {
					t.Errorf("stored %d messages, want none", got)
				}
			}
		})
	}
}
