package grpcbackend

import (
	"context"
	"strings"
)

// Request is one call of the Orders service: a method's short name and its
// argument (an order id, or a customer for ListOrders).
type Request struct{ Method, Arg string }

// Requests are the calls the demo and the end-to-end tests make: every
// order, every customer's stream, an unknown order, and the cancellation
// of a placed and of a shipped order.
var Requests = []Request{
	{"GetOrder", "o-1"}, {"GetOrder", "o-2"}, {"GetOrder", "o-3"}, {"GetOrder", "o-4"}, {"GetOrder", "o-5"},
	{"GetOrder", "o-6"}, {"GetOrder", "o-9"}, {"ListOrders", "acme"}, {"ListOrders", "globex"},
	{"CancelOrder", "o-1"}, {"CancelOrder", "o-2"},
}

// Do makes one call and returns the answer as one JSON text (a stream's
// messages as an array; "null" when the call failed) and the call's error.
func (c *Client) Do(ctx context.Context, r Request) (string, error) {
	var out string
	var err error
	switch r.Method {
	case "GetOrder":
		out, err = c.GetOrder(ctx, r.Arg)
	case "CancelOrder":
		out, err = c.CancelOrder(ctx, r.Arg)
	case "ListOrders":
		var msgs []string
		msgs, err = c.ListOrders(ctx, r.Arg)
		out = "[" + strings.Join(msgs, ",") + "]"
	}
	if out == "" {
		out = "null"
	}
	return out, err
}

// carriesOrder reports whether r's answer has Orders in it (an unknown
// order and a cancellation have none).
func carriesOrder(r Request) bool {
	switch r.Method {
	case "ListOrders":
		return true
	case "GetOrder":
		return r.Arg != "o-9"
	}
	return false
}

// WantDifferences is what shadowlab's report must hold after every
// request of Requests made rounds times through a route whose compare
// block is `unorderedArrays: ["$.items by sku", "$[*].items by sku"]`:
// "pattern kind" → count, for the seeded differences that rule does not
// hide, each counted once per call it applies to. A stream is compared as
// the JSON array of its messages, so a streamed order's field is under
// "$[*]".
func WantDifferences(rounds int) map[string]int {
	want := map[string]int{}
	for _, d := range SeededDifferences {
		if d.HiddenBy != "" {
			continue
		}
		pattern := d.Path
		if d.Method == "ListOrders" {
			pattern = "$[*]" + strings.TrimPrefix(d.Path, "$")
		}
		for _, r := range Requests {
			if r.Method == d.Method && (d.Request == r.Arg || d.Request == "" && carriesOrder(r)) {
				want[pattern+" "+d.Kind] += rounds
			}
		}
	}
	return want
}

// UnorderedItems is the compare rule under which the candidate's reversed
// items are no difference, in a unary answer and in each streamed one.
var UnorderedItems = []string{"$.items by sku", "$[*].items by sku"}
