package emulator

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/upvest-relay/upvest-relay/subjects"
)

// Families returns Upvest's documented event families (the values of a
// subscription's type[] besides ALL).
func Families() []string { return subjects.Families() }

func families() []string { return append(Families(), "ALL") }

func isFamily(s string) bool { return slices.Contains(families(), s) }

// states are plausible states per family (the part after the dot).
func states(family string) []string {
	switch family {
	case "USER":
		return []string{"CREATED", "ACTIVATED", "UPDATED", "OFFBOARDING_INITIATED", "OFFBOARDED"}
	case "USER_CHECK":
		return []string{"PASSED", "PASSED", "PASSED", "FAILED"}
	case "ORDER", "PORTFOLIO_ORDER":
		return []string{"NEW", "PROCESSING", "FILLED", "FILLED", "CANCELLED", "REJECTED"}
	case "ORDER_CANCELLATION":
		return []string{"PENDING", "CONFIRMED", "REJECTED"}
	case "EXECUTION":
		return []string{"FILLED", "FILLED", "PARTIALLY_FILLED"}
	case "POSITION", "CASH_BALANCE", "INTRADAY_ACCOUNT_VALUATION", "INSTRUMENT":
		return []string{"UPDATED"}
	case "ACCOUNT", "ACCOUNT_GROUP":
		return []string{"OPENED", "ACTIVATED", "LOCKED", "UNLOCKED", "CLOSED"}
	case "REPORT", "TREASURY_REPORT", "ACCOUNT_VALUATION", "ACCOUNT_RETURNS":
		return []string{"CREATED"}
	case "DIRECT_DEBIT", "WITHDRAWAL", "FEE_COLLECTION", "ACCOUNT_LIQUIDATION", "REBALANCING_EXECUTION_ORDER":
		return []string{"NEW", "PROCESSING", "COMPLETED", "COMPLETED", "FAILED"}
	case "PORTFOLIO", "PORTFOLIO_ALLOCATION", "TAX_EXEMPTION", "CORPORATE_ACTION":
		return []string{"CREATED", "UPDATED"}
	case "CASH_TRANSACTION", "SECURITY_TRANSACTION":
		return []string{"BOOKED", "BOOKED", "CANCELLED"}
	case "VIRTUAL_CASH_INCREASE", "VIRTUAL_CASH_DECREASE":
		return []string{"NEW", "CONFIRMED", "CONFIRMED", "CANCELLED"}
	case "SAVINGS_PLAN":
		return []string{"CREATED", "ACTIVE", "PAUSED", "CANCELLED"}
	case "SAVINGS_PLAN_EXECUTION":
		return []string{"NEW", "COMPLETED", "COMPLETED", "FAILED"}
	}
	return []string{"UPDATED"}
}

// instrument is a real listed instrument.
type instrument struct {
	isin, wkn, name string
	priceCents      int64 // EUR
}

func instruments() []instrument {
	return []instrument{
		{"US0378331005", "865985", "Apple Inc.", 19850},
		{"US5949181045", "870747", "Microsoft Corp.", 38920},
		{"US0231351067", "906866", "Amazon.com Inc.", 17640},
		{"DE0007164600", "716460", "SAP SE", 23410},
		{"DE0007236101", "723610", "Siemens AG", 18275},
		{"DE0005190003", "519000", "Bayerische Motoren Werke AG", 8932},
		{"NL0010273215", "A1J4U4", "ASML Holding N.V.", 64880},
		{"FR0000121014", "853292", "LVMH Moët Hennessy Louis Vuitton SE", 61230},
		{"IE00B4L5Y983", "A0RPWH", "iShares Core MSCI World UCITS ETF USD (Acc)", 9871},
		{"IE00BK5BQT80", "A2PKXG", "Vanguard FTSE All-World UCITS ETF (USD) Accumulating", 12455},
	}
}

// person is an end user of the tenant; events of one person share ids.
type person struct {
	userID, groupID, accountID, portfolioID string
	first, last, city                       string
}

// Generator makes realistic Upvest events: every family of docs/upvest.md with
// plausible states and objects (UUID ids, real ISINs, amounts as decimal
// strings, EUR, RFC 3339 timestamps), drawn from a small population of
// users so that events correlate. The same seed gives the same events in
// the same order; with GenerateFrom their timestamps are the same too.
// A Generator is safe for concurrent use.
//
// Each event's created_at is later than the previous one's. By default it
// tracks the wall clock: it is the current time (to the microsecond), or
// 1 µs after the previous event's if that is later (events generated
// faster than one per microsecond), so a generator used for hours, as
// `relay demo` does, does not drift into the future. GenerateFrom makes
// the timestamps synthetic instead.
type Generator struct {
	mu       sync.Mutex
	rng      *rand.Rand
	now      time.Time // created_at of the last event; the start with GenerateFrom
	fixed    bool      // GenerateFrom: synthetic timestamps, independent of the clock
	started  bool      // an event was generated
	clock    func() time.Time
	families []string
	people   []person
}

// GeneratorOption configures a Generator.
type GeneratorOption func(*Generator)

// GenerateFrom makes timestamps reproducible: the first event's created_at
// is t and each further event's is 10 ms to 2 s (drawn from the seed) after
// the previous one's, whatever the wall clock says.
func GenerateFrom(t time.Time) GeneratorOption {
	return func(g *Generator) { g.now, g.fixed = t.UTC(), true }
}

// GenerateFamilies restricts Event to the given families.
func GenerateFamilies(families ...string) GeneratorOption {
	return func(g *Generator) { g.families = slices.Clone(families) }
}

// NewGenerator returns a generator seeded with seed.
func NewGenerator(seed uint64, opts ...GeneratorOption) *Generator {
	g := &Generator{
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		clock:    time.Now,
		families: Families(),
	}
	for _, o := range opts {
		o(g)
	}
	return g
}

// Next returns what happens next at the tenant: usually one event of a
// random family, sometimes a whole order lifecycle or a user onboarding.
func (g *Generator) Next() []Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch n := g.rng.IntN(20); {
	case n < 2 && g.allowed("ORDER"):
		return g.orderFlow()
	case n < 3 && g.allowed("USER"):
		return g.onboarding()
	}
	return []Event{g.event(g.pick(g.families))}
}

// Event returns one event of a random family.
func (g *Generator) Event() Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.event(g.pick(g.families))
}

// Of returns one event of family in a random state. An unknown family
// yields FAMILY.UPDATED with a generic object, as a new Upvest family would.
func (g *Generator) Of(family string) Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.event(family)
}

// Batch returns n events of random families.
func (g *Generator) Batch(n int) []Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Event, n)
	for i := range out {
		out[i] = g.event(g.pick(g.families))
	}
	return out
}

// OrderFlow returns the events of one market order of an existing user:
// ORDER.NEW, EXECUTION.FILLED and ORDER.FILLED (in either order, as at
// Upvest), then POSITION.UPDATED, CASH_BALANCE.UPDATED and
// SECURITY_TRANSACTION.BOOKED, sharing the order, user and account ids.
func (g *Generator) OrderFlow() []Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.orderFlow()
}

// Onboarding returns the events of a new user: USER.CREATED,
// USER_CHECK.PASSED, ACCOUNT_GROUP.OPENED, ACCOUNT.OPENED, USER.ACTIVATED.
func (g *Generator) Onboarding() []Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.onboarding()
}

func (g *Generator) allowed(family string) bool { return slices.Contains(g.families, family) }

func (g *Generator) pick(from []string) string { return from[g.rng.IntN(len(from))] }

func (g *Generator) id() string {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[:8], g.rng.Uint64())
	binary.BigEndian.PutUint64(u[8:], g.rng.Uint64())
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u.String()
}

// tick returns the next event's created_at (see Generator).
func (g *Generator) tick() time.Time {
	// Drawn in both modes, so that a seed gives the same ids and objects
	// with and without GenerateFrom.
	step := time.Duration(10+g.rng.IntN(1990)) * time.Millisecond
	first := !g.started
	g.started = true
	if g.fixed {
		if !first {
			g.now = g.now.Add(step)
		}
		return g.now
	}
	wall := g.clock().UTC().Truncate(time.Microsecond)
	if next := g.now.Add(time.Microsecond); !first && next.After(wall) {
		g.now = next
	} else {
		g.now = wall
	}
	return g.now
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func date(t time.Time) string { return t.UTC().Format(time.DateOnly) }

func amount(cents int64) string { return fmt.Sprintf("%d.%02d", cents/100, cents%100) }

func (g *Generator) cents(lo, hi int64) int64 { return lo + g.rng.Int64N(hi-lo+1) }

func (g *Generator) newPerson() person {
	firsts := []string{"Anna", "Lukas", "Mia", "Jonas", "Lea", "Felix", "Sophie", "Paul", "Emma", "Noah"}
	lasts := []string{"Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker"}
	cities := []string{"Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Leipzig"}
	p := person{
		userID: g.id(), groupID: g.id(), accountID: g.id(), portfolioID: g.id(),
		first: g.pick(firsts), last: g.pick(lasts), city: g.pick(cities),
	}
	g.people = append(g.people, p)
	return p
}

// someone returns a known user, creating the first few.
func (g *Generator) someone() person {
	if len(g.people) < 5 || g.rng.IntN(10) == 0 {
		return g.newPerson()
	}
	return g.people[g.rng.IntN(len(g.people))]
}

func (g *Generator) instrument() instrument {
	all := instruments()
	return all[g.rng.IntN(len(all))]
}

func (g *Generator) event(family string) Event {
	return g.eventIn(family, g.pick(states(family)), g.someone())
}

// eventIn builds an event of family in state for person p.
func (g *Generator) eventIn(family, state string, p person) Event {
	t := g.tick()
	created := t.Add(-time.Duration(g.rng.IntN(3600)) * time.Second)
	in := g.instrument()
	obj := map[string]any{"id": g.id(), "created_at": ts(created), "updated_at": ts(t)}
	user := map[string]any{"user_id": p.userID, "account_id": p.accountID}
	switch family {
	case "USER":
		obj["first_name"], obj["last_name"] = p.first, p.last
		obj["email"] = fmt.Sprintf("%s.%s.%d@example.com", p.first, p.last, g.rng.IntN(1000))
		obj["id"] = p.userID
		obj["birth_date"] = date(time.Date(1950+g.rng.IntN(55), time.Month(1+g.rng.IntN(12)), 1+g.rng.IntN(28), 0, 0, 0, 0, time.UTC))
		obj["birth_city"], obj["birth_country"], obj["nationalities"] = p.city, "DE", []string{"DE"}
		obj["address"] = map[string]any{
			"address_line1": fmt.Sprintf("Hauptstraße %d", 1+g.rng.IntN(200)),
			"postcode":      fmt.Sprintf("%05d", 10000+g.rng.IntN(89999)),
			"city":          p.city, "country": "DE",
		}
		obj["status"] = map[string]string{"CREATED": "PENDING", "OFFBOARDING_INITIATED": "OFFBOARDING", "OFFBOARDED": "OFFBOARDED"}[state]
		if obj["status"] == "" {
			obj["status"] = "ACTIVE"
		}
	case "USER_CHECK":
		obj["user_id"] = p.userID
		obj["type"] = g.pick([]string{"IDENTITY_VERIFICATION", "ADDRESS_VERIFICATION", "APPROPRIATENESS", "KNOW_YOUR_CUSTOMER"})
		obj["status"] = state
	case "ORDER":
		price := in.priceCents
		qty := 1 + g.rng.IntN(20)
		merge(obj, user)
		obj["instrument_id"], obj["instrument_id_type"] = in.isin, "ISIN"
		obj["side"] = g.pick([]string{"BUY", "BUY", "SELL"})
		obj["type"], obj["order_type"] = "MARKET", "MARKET"
		obj["quantity"] = fmt.Sprintf("%d", qty)
		obj["cash_amount"], obj["currency"] = amount(price*int64(qty)), "EUR"
		obj["status"] = state
		obj["fee"] = "0.00"
	case "ORDER_CANCELLATION":
		merge(obj, user)
		obj["order_id"], obj["status"] = g.id(), state
	case "EXECUTION":
		qty := 1 + g.rng.IntN(20)
		merge(obj, user)
		obj["order_id"], obj["side"] = g.id(), g.pick([]string{"BUY", "SELL"})
		obj["instrument_id"], obj["instrument_id_type"] = in.isin, "ISIN"
		obj["quantity"], obj["share_price"] = fmt.Sprintf("%d", qty), amount(in.priceCents)
		obj["amount"], obj["currency"] = amount(in.priceCents*int64(qty)), "EUR"
		obj["status"] = state
		obj["transaction_time"], obj["settlement_date"] = ts(t), date(t.AddDate(0, 0, 2))
	case "POSITION":
		// A position is keyed by account and instrument and has no id of
		// its own.
		delete(obj, "id")
		delete(obj, "created_at")
		merge(obj, user)
		obj["instrument_id"], obj["instrument_id_type"] = in.isin, "ISIN"
		q := g.cents(1, 50000)
		obj["quantity"], obj["available_quantity"] = amount(q), amount(q)
	case "CASH_BALANCE":
		merge(obj, user)
		c := g.cents(0, 5_000_000)
		obj["currency"], obj["balance"] = "EUR", amount(c)
		obj["available_for_trading"], obj["available_for_withdrawal"] = amount(c), amount(c*9/10)
	case "ACCOUNT":
		obj["id"], obj["user_id"], obj["account_group_id"] = p.accountID, p.userID, p.groupID
		obj["type"], obj["name"] = "TRADING", "Depot "+p.last
		obj["status"] = map[string]string{"OPENED": "ACTIVE", "ACTIVATED": "ACTIVE", "LOCKED": "LOCKED", "UNLOCKED": "ACTIVE", "CLOSED": "CLOSED"}[state]
	case "ACCOUNT_GROUP":
		obj["id"], obj["user_id"], obj["type"] = p.groupID, p.userID, "PERSONAL"
		obj["securities_account_number"] = fmt.Sprintf("%010d", g.rng.Int64N(10_000_000_000))
		obj["status"] = map[string]string{"OPENED": "ACTIVE", "ACTIVATED": "ACTIVE", "LOCKED": "LOCKED", "UNLOCKED": "ACTIVE", "CLOSED": "CLOSED"}[state]
	case "INSTRUMENT":
		obj["isin"], obj["wkn"], obj["name"] = in.isin, in.wkn, in.name
		obj["fractional_trading"], obj["trading_status"] = true, "ACTIVE"
	case "REPORT":
		merge(obj, user)
		obj["type"] = g.pick([]string{"QUARTERLY_STATEMENT", "ANNUAL_TAX_REPORT", "TRADE_CONFIRMATION", "EX_ANTE_COST_INFORMATION"})
		obj["period_start"], obj["period_end"], obj["format"] = date(t.AddDate(0, -3, 0)), date(t), "PDF"
	case "TREASURY_REPORT":
		obj["type"], obj["report_date"] = g.pick([]string{"DAILY_CASH_RECONCILIATION", "DAILY_SETTLEMENT"}), date(t)
		obj["currency"], obj["total_amount"] = "EUR", amount(g.cents(100_000, 900_000_000))
	case "DIRECT_DEBIT", "WITHDRAWAL", "VIRTUAL_CASH_INCREASE", "VIRTUAL_CASH_DECREASE":
		merge(obj, user)
		obj["amount"], obj["currency"], obj["status"] = amount(g.cents(1000, 500_000)), "EUR", state
		switch family {
		case "DIRECT_DEBIT":
			obj["mandate_id"], obj["remittance_information"] = g.id(), "Sparplan "+p.last
		case "WITHDRAWAL":
			obj["iban"] = fmt.Sprintf("DE%02d5001051700%08d", 10+g.rng.IntN(89), g.rng.IntN(100_000_000))
		}
	case "PORTFOLIO":
		merge(obj, user)
		obj["id"], obj["allocation_id"], obj["status"] = p.portfolioID, g.id(), "ACTIVE"
	case "PORTFOLIO_ALLOCATION":
		a, b := g.instrument(), g.instrument()
		obj["name"] = "Balanced " + fmt.Sprintf("%d", 40+10*g.rng.IntN(4))
		obj["instruments"] = []map[string]string{
			{"instrument_id": a.isin, "instrument_id_type": "ISIN", "weight": "0.6000"},
			{"instrument_id": b.isin, "instrument_id_type": "ISIN", "weight": "0.4000"},
		}
	case "PORTFOLIO_ORDER", "REBALANCING_EXECUTION_ORDER":
		merge(obj, user)
		obj["portfolio_id"], obj["status"] = p.portfolioID, state
		obj["type"], obj["cash_amount"], obj["currency"] = g.pick([]string{"BUY", "SELL"}), amount(g.cents(2500, 1_000_000)), "EUR"
	case "CORPORATE_ACTION":
		obj["type"] = g.pick([]string{"CASH_DIVIDEND", "STOCK_SPLIT", "SPIN_OFF"})
		obj["instrument_id"], obj["instrument_id_type"] = in.isin, "ISIN"
		obj["ex_date"], obj["record_date"], obj["payment_date"] = date(t.AddDate(0, 0, 7)), date(t.AddDate(0, 0, 8)), date(t.AddDate(0, 0, 14))
		obj["amount_per_share"], obj["currency"] = amount(g.cents(5, 500)), "EUR"
	case "ACCOUNT_VALUATION", "INTRADAY_ACCOUNT_VALUATION":
		merge(obj, user)
		pos, cash := g.cents(0, 10_000_000), g.cents(0, 1_000_000)
		obj["valuation_date"], obj["currency"] = date(t), "EUR"
		obj["positions_value"], obj["cash_value"], obj["total_value"] = amount(pos), amount(cash), amount(pos+cash)
		if family == "INTRADAY_ACCOUNT_VALUATION" {
			obj["valuation_time"] = ts(t)
		}
	case "CASH_TRANSACTION":
		merge(obj, user)
		obj["type"] = g.pick([]string{"DEPOSIT", "WITHDRAWAL", "DIVIDEND", "FEE", "ORDER_SETTLEMENT"})
		obj["amount"], obj["currency"], obj["status"] = amount(g.cents(100, 500_000)), "EUR", state
		obj["booking_date"], obj["value_date"] = date(t), date(t.AddDate(0, 0, 1))
	case "SECURITY_TRANSACTION":
		merge(obj, user)
		obj["type"] = g.pick([]string{"BUY", "SELL", "TRANSFER_IN", "TRANSFER_OUT"})
		obj["instrument_id"], obj["instrument_id_type"] = in.isin, "ISIN"
		obj["quantity"], obj["status"] = amount(g.cents(1, 10000)), state
		obj["booking_date"], obj["value_date"] = date(t), date(t.AddDate(0, 0, 2))
	case "ACCOUNT_LIQUIDATION":
		merge(obj, user)
		obj["status"], obj["reason"] = state, g.pick([]string{"USER_REQUEST", "OFFBOARDING"})
	case "ACCOUNT_RETURNS":
		merge(obj, user)
		obj["period_start"], obj["period_end"] = date(t.AddDate(-1, 0, 0)), date(t)
		obj["time_weighted_return"] = fmt.Sprintf("%.4f", g.rng.Float64()*0.4-0.1)
		obj["money_weighted_return"] = fmt.Sprintf("%.4f", g.rng.Float64()*0.4-0.1)
	case "FEE_COLLECTION":
		merge(obj, user)
		obj["fee_type"] = g.pick([]string{"MANAGEMENT_FEE", "CUSTODY_FEE"})
		obj["amount"], obj["currency"], obj["status"] = amount(g.cents(50, 5000)), "EUR", state
		obj["period_start"], obj["period_end"] = date(t.AddDate(0, -1, 0)), date(t)
	case "SAVINGS_PLAN":
		merge(obj, user)
		obj["instrument_id"], obj["instrument_id_type"] = in.isin, "ISIN"
		obj["cash_amount"], obj["currency"] = amount(g.cents(25, 1000)*100), "EUR"
		obj["interval"], obj["start_date"], obj["status"] = g.pick([]string{"MONTHLY", "QUARTERLY"}), date(t.AddDate(0, 0, 3)), state
	case "SAVINGS_PLAN_EXECUTION":
		merge(obj, user)
		obj["savings_plan_id"], obj["order_id"] = g.id(), g.id()
		obj["execution_date"], obj["cash_amount"], obj["currency"] = date(t), amount(g.cents(25, 1000)*100), "EUR"
		obj["status"] = state
	case "TAX_EXEMPTION":
		obj["user_id"] = p.userID
		obj["type"] = g.pick([]string{"INDIVIDUAL", "JOINT"})
		obj["amount"], obj["currency"] = amount(g.cents(1, 20)*10_000), "EUR"
		obj["valid_from"], obj["valid_to"] = fmt.Sprintf("%d-01-01", t.Year()), fmt.Sprintf("%d-12-31", t.Year())
	default:
		merge(obj, user)
		obj["status"] = state
	}
	return Event{ID: g.id(), CreatedAt: t, Type: family + "." + state, Object: obj}
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		dst[k] = v
	}
}

func (g *Generator) orderFlow() []Event {
	p := g.someone()
	in := g.instrument()
	qty := int64(1 + g.rng.IntN(20))
	orderID := g.id()
	side := g.pick([]string{"BUY", "BUY", "SELL"})
	placed := g.tick()
	cash := amount(in.priceCents * qty)
	order := func(state string, t time.Time) Event {
		return Event{ID: g.id(), CreatedAt: t, Type: "ORDER." + state, Object: map[string]any{
			"id": orderID, "created_at": ts(placed), "updated_at": ts(t),
			"user_id": p.userID, "account_id": p.accountID,
			"instrument_id": in.isin, "instrument_id_type": "ISIN",
			"side": side, "type": "MARKET", "order_type": "MARKET",
			"quantity": fmt.Sprintf("%d", qty), "cash_amount": cash, "currency": "EUR",
			"fee": "0.00", "status": state,
		}}
	}
	executed := g.tick()
	exec := Event{ID: g.id(), CreatedAt: executed, Type: "EXECUTION.FILLED", Object: map[string]any{
		"id": g.id(), "created_at": ts(executed), "updated_at": ts(executed),
		"order_id": orderID, "user_id": p.userID, "account_id": p.accountID, "side": side,
		"instrument_id": in.isin, "instrument_id_type": "ISIN",
		"quantity": fmt.Sprintf("%d", qty), "share_price": amount(in.priceCents),
		"amount": cash, "currency": "EUR", "status": "FILLED",
		"transaction_time": ts(executed), "settlement_date": date(executed.AddDate(0, 0, 2)),
	}}
	// The order's FILLED lands around the execution, either side of it
	// (as at Upvest), but always after the order's own NEW.
	filledAt := executed.Add(time.Duration(g.rng.IntN(200)-100) * time.Millisecond)
	if !filledAt.After(placed) {
		filledAt = placed.Add(time.Microsecond)
	}
	filled := order("FILLED", filledAt)
	evs := []Event{order("NEW", placed), exec, filled}
	if filled.CreatedAt.Before(exec.CreatedAt) {
		evs[1], evs[2] = filled, exec
	}
	evs = append(evs,
		g.eventIn("POSITION", "UPDATED", p),
		g.eventIn("CASH_BALANCE", "UPDATED", p),
		g.eventIn("SECURITY_TRANSACTION", "BOOKED", p),
	)
	return evs
}

func (g *Generator) onboarding() []Event {
	p := g.newPerson()
	return []Event{
		g.eventIn("USER", "CREATED", p),
		g.eventIn("USER_CHECK", "PASSED", p),
		g.eventIn("ACCOUNT_GROUP", "OPENED", p),
		g.eventIn("ACCOUNT", "OPENED", p),
		g.eventIn("USER", "ACTIVATED", p),
	}
}
