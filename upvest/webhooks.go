package upvest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Webhook is a webhook subscription as Upvest returns it.
type Webhook struct {
	ID        string        `json:"id"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
	Title     string        `json:"title"`
	URL       string        `json:"url"`
	Enabled   bool          `json:"enabled"`
	Type      []string      `json:"type"`
	Config    WebhookConfig `json:"config"`
}

// WebhookConfig is a subscription's batching: Delay is the longest
// collection time (^[1-9][0-9]?[sm]$, e.g. "5s"), MaxPackageSize the package
// size in bytes (100…1048576).
type WebhookConfig struct {
	Delay          string `json:"delay,omitempty"`
	MaxPackageSize int    `json:"max_package_size,omitempty"`
}

// WebhookCreate is the body of CreateWebhook. Title and URL are required;
// Type (event families) and Config are optional.
type WebhookCreate struct {
	Title  string         `json:"title"`
	URL    string         `json:"url"`
	Type   []string       `json:"type,omitempty"`
	Config *WebhookConfig `json:"config,omitempty"`
}

// WebhookUpdate is the body of UpdateWebhook: only non-nil (non-empty for
// Type) fields are sent and changed.
type WebhookUpdate struct {
	Title   *string        `json:"title,omitempty"`
	URL     *string        `json:"url,omitempty"`
	Type    []string       `json:"type,omitempty"`
	Enabled *bool          `json:"enabled,omitempty"`
	Config  *WebhookConfig `json:"config,omitempty"`
}

const (
	// pageLimit is the page size ListWebhooks asks for (Upvest's maximum).
	pageLimit = 1000
	// maxPages bounds a listing against a server that never ends it.
	maxPages = 100
)

type webhookPage struct {
	Meta struct {
		TotalCount *int `json:"total_count"`
	} `json:"meta"`
	Data []Webhook `json:"data"`
}

// ListWebhooks returns every webhook subscription, paging through all pages
// (each page is one call with its own timeout). A webhook seen on an
// earlier page (pages shift when subscriptions change meanwhile) is listed
// once. It stops at an empty page or once total_count webhooks are passed
// (without total_count, at a short page); a page of nothing new, or more
// than 100 pages, gives ErrBadResponse rather than looping forever.
func (c *Client) ListWebhooks(ctx context.Context) ([]Webhook, error) {
	var all []Webhook
	seen := make(map[string]bool)
	offset := 0
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("%w: webhook listing did not end after %d pages", ErrBadResponse, maxPages)
		}
		q := url.Values{"offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(pageLimit)}}
		var p webhookPage
		if err := c.do(ctx, http.MethodGet, "/webhooks", q, nil, &p); err != nil {
			return nil, err
		}
		if len(p.Data) == 0 {
			return all, nil
		}
		added := 0
		for _, w := range p.Data {
			if !seen[w.ID] {
				seen[w.ID] = true
				all = append(all, w)
				added++
			}
		}
		if added == 0 {
			return nil, fmt.Errorf("%w: webhook page at offset %d repeats earlier webhooks", ErrBadResponse, offset)
		}
		offset += len(p.Data)
		if total := p.Meta.TotalCount; (total != nil && offset >= *total) || (total == nil && len(p.Data) < pageLimit) {
			return all, nil
		}
	}
}

// GetWebhook returns the subscription id. A missing one gives an error
// matching ErrNotFound.
func (c *Client) GetWebhook(ctx context.Context, id string) (Webhook, error) {
	var w Webhook
	p, err := webhookPath(id, "")
	if err != nil {
		return w, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, nil, &w)
	return w, err
}

// CreateWebhook creates a subscription and returns it. Upvest creates it
// disabled: enable it with UpdateWebhook.
func (c *Client) CreateWebhook(ctx context.Context, in WebhookCreate) (Webhook, error) {
	var w Webhook
	if in.Title == "" || in.URL == "" {
		return w, fmt.Errorf("%w: a webhook needs a title and a URL", ErrInvalid)
	}
	err := c.do(ctx, http.MethodPost, "/webhooks", nil, in, &w)
	return w, err
}

// UpdateWebhook changes the fields set in in and returns the subscription
// as updated.
func (c *Client) UpdateWebhook(ctx context.Context, id string, in WebhookUpdate) (Webhook, error) {
	var w Webhook
	p, err := webhookPath(id, "")
	if err != nil {
		return w, err
	}
	err = c.do(ctx, http.MethodPatch, p, nil, in, &w)
	return w, err
}

// DeleteWebhook deletes the subscription id.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	p, err := webhookPath(id, "")
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, p, nil, nil, nil)
}

// TestWebhook asks Upvest to deliver a test package to the subscription id;
// the delivery happens asynchronously after the call returns.
func (c *Client) TestWebhook(ctx context.Context, id string) error {
	p, err := webhookPath(id, "/test")
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, p, nil, nil, nil)
}

func webhookPath(id, suffix string) (string, error) {
	if id == "" {
		return "", fmt.Errorf("%w: empty webhook id", ErrInvalid)
	}
	return "/webhooks/" + url.PathEscape(id) + suffix, nil
}
