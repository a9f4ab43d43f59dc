package compare

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Synthetic traffic for benchmarks and the noise evaluation: an orders API
// whose responses have stable fields, per-response noise (timestamps,
// UUIDs, nonces) and, on the shadow side, seeded real differences.

// apiGen renders responses of a made-up orders API.
type apiGen struct {
	rng *rand.Rand
	// lineNoise gives every order line a fresh reserved_at timestamp;
	// without it the lines are stable.
	lineNoise bool
	// richNoise adds noise that is harder to learn: a replica name that
	// often repeats, a discount expiry on a tenth of the orders only, and
	// a recommendations list of random length.
	richNoise bool
}

func newAPIGen(seed uint64) *apiGen {
	return &apiGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// uuid draws a random UUID-looking string.
func (g *apiGen) uuid() string {
	hi, lo := g.rng.Uint64(), g.rng.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", hi>>32, hi>>16&0xffff, hi&0xfff, lo>>48&0xfff, lo&0xffffffffffff)
}

// timestamp draws an RFC 3339 timestamp with milliseconds around a fixed day.
func (g *apiGen) timestamp() string {
	ms := g.rng.IntN(86_400_000)
	return fmt.Sprintf("2026-03-14T%02d:%02d:%02d.%03dZ", ms/3_600_000, ms/60_000%60, ms/1000%60, ms%1000)
}

// order is the stable content of one order, a function of its id.
type order struct {
	ID       int
	Customer string
	Status   string
	Currency string
	Lines    []line
	Total    float64
}

type line struct {
	SKU   string
	Name  string
	Qty   int
	Price float64
	Tags  []string
}

var (
	genStatuses = []string{"pending", "paid", "shipped", "delivered", "refunded"}
	genNames    = []string{"Widget", "Gadget", "Doohickey", "Sprocket", "Gizmo", "Thingamajig", "Whatsit", "Contraption"}
	genTags     = []string{"fragile", "gift", "bulk", "express", "eco", "imported"}
	genPeople   = []string{"Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov", "Ken Thompson", "Frances Allen", "Niklaus Wirth"}
)

// orderFor derives the stable order with the given id (its own seed, so
// it is the same every time it is asked for).
func orderFor(id, lines int) order {
	r := rand.New(rand.NewPCG(uint64(id), 7))
	o := order{ID: id, Customer: genPeople[r.IntN(len(genPeople))], Status: genStatuses[r.IntN(len(genStatuses))], Currency: "EUR"}
	for i := range lines {
		l := line{
			SKU:   fmt.Sprintf("SKU-%05d-%d", r.IntN(100000), i),
			Name:  genNames[r.IntN(len(genNames))],
			Qty:   1 + r.IntN(9),
			Price: float64(r.IntN(100000)) / 100,
		}
		for range r.IntN(3) {
			l.Tags = append(l.Tags, genTags[r.IntN(len(genTags))])
		}
		o.Lines = append(o.Lines, l)
		o.Total += float64(l.Qty) * l.Price
	}
	return o
}

// variant says how a rendering departs from the stable order.
type variant struct {
	renameCustomer bool    // "customer" becomes "customer_name"
	priceDelta     float64 // added to lines[0].price
	extraField     bool    // a "loyalty_tier" member is added
	changedStatus  bool    // "status" gets another value
	dropNonce      bool    // "meta.nonce" is left out
}

// render writes one response for order o: stable content, fresh noise.
func (g *apiGen) render(o order, v variant) []byte {
	var b strings.Builder
	b.Grow(256 + 200*len(o.Lines))
	b.WriteString(`{"request_id":"`)
	b.WriteString(g.uuid())
	b.WriteString(`","generated_at":"`)
	b.WriteString(g.timestamp())
	b.WriteString(`","order":{"id":`)
	b.WriteString(strconv.Itoa(o.ID))
	if v.renameCustomer {
		b.WriteString(`,"customer_name":`)
	} else {
		b.WriteString(`,"customer":`)
	}
	b.WriteString(strconv.Quote(o.Customer))
	status := o.Status
	if v.changedStatus {
		status = "on_hold"
	}
	b.WriteString(`,"status":"` + status + `","currency":"` + o.Currency + `"`)
	if v.extraField {
		b.WriteString(`,"loyalty_tier":"gold"`)
	}
	b.WriteString(`,"lines":[`)
	for i, l := range o.Lines {
		if i > 0 {
			b.WriteByte(',')
		}
		price := l.Price
		if i == 0 {
			price += v.priceDelta
		}
		fmt.Fprintf(&b, `{"sku":%q,"name":%q,"qty":%d,"unit_price":%s,"tags":[`, l.SKU, l.Name, l.Qty, strconv.FormatFloat(price, 'f', -1, 64))
		for j, t := range l.Tags {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Quote(t))
		}
		b.WriteString(`],"reserved_at":"`)
		if g.lineNoise {
			b.WriteString(g.timestamp())
		} else {
			fmt.Fprintf(&b, "2026-03-14T09:%02d:%02d.000Z", i/60%60, i%60)
		}
		b.WriteString(`"}`)
	}
	b.WriteString(`],"total":`)
	b.WriteString(strconv.FormatFloat(o.Total, 'f', 2, 64))
	if g.richNoise && o.ID%10 == 3 {
		b.WriteString(`,"discount":{"code":"SPRING","expires_at":"`)
		b.WriteString(g.timestamp())
		b.WriteString(`"}`)
	}
	b.WriteString(`},"meta":{`)
	if !v.dropNonce {
		b.WriteString(`"nonce":"`)
		b.WriteString(strconv.FormatUint(g.rng.Uint64(), 36))
		b.WriteString(`",`)
	}
	b.WriteString(`"server_time_ms":`)
	b.WriteString(strconv.Itoa(g.rng.IntN(1_000_000)))
	b.WriteString(`,"api_version":"2024-06-01"`)
	if g.richNoise {
		fmt.Fprintf(&b, `,"served_by":"replica-%d","recommendations":[`, g.rng.IntN(3))
		for i := range g.rng.IntN(4) {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"sku":"SKU-%05d","score":%d}`, g.rng.IntN(100000), g.rng.IntN(100))
		}
		b.WriteByte(']')
	}
	b.WriteString(`}}`)
	return []byte(b.String())
}

// linesFor picks how many order lines make a body of about size bytes.
func linesFor(size int) int { return max(1, (size-280)/127) }

// benchPair returns a primary and shadow body of about size bytes that
// differ in a few places: four noise fields (request_id, generated_at,
// meta.nonce, meta.server_time_ms) and two real ones (a price, an extra
// member).
func benchPair(seed uint64, size int) (primary, shadow []byte) {
	g := newAPIGen(seed)
	o := orderFor(int(seed), linesFor(size))
	primary = g.render(o, variant{})
	shadow = g.render(o, variant{priceDelta: 0.5, extraField: true})
	return primary, shadow
}
