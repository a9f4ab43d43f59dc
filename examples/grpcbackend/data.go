package grpcbackend

import (
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Status numbers of the OrderStatus enum. statusInTransit exists only in the
// candidate's proto.
const (
	statusPlaced    = 1
	statusShipped   = 2
	statusDelivered = 3
	statusInTransit = 4
)

// item is one line of an order.
type item struct {
	sku        string
	quantity   int32
	priceCents int64
}

// order is one order of the data set, as the legacy version answers it.
type order struct {
	id       string
	customer string
	status   int32
	items    []item
	tags     []string
	placedAt time.Time
}

// totalCents is the sum of the order's lines.
func (o order) totalCents() int64 {
	var sum int64
	for _, it := range o.items {
		sum += int64(it.quantity) * it.priceCents
	}
	return sum
}

// placed is the time order n of the data set was placed.
func placed(n int) time.Time {
	return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Hour)
}

// orders is the data set, in id order. Both versions answer from it; nothing
// ever modifies it.
var orders = []order{
	{id: "o-1", customer: "acme", status: statusPlaced, placedAt: placed(1), tags: []string{"web"},
		items: []item{{"sku-pen", 10, 120}, {"sku-notebook", 3, 450}}},
	{id: "o-2", customer: "acme", status: statusShipped, placedAt: placed(2), tags: []string{"priority", "web"},
		items: []item{{"sku-desk", 1, 18900}, {"sku-lamp", 2, 3450}, {"sku-chair", 1, 12900}}},
	{id: "o-3", customer: "globex", status: statusDelivered, placedAt: placed(3),
		items: []item{{"sku-toner", 4, 5600}, {"sku-paper", 10, 799}}},
	{id: "o-4", customer: "globex", status: statusPlaced, placedAt: placed(4), tags: []string{"bulk"},
		items: []item{{"sku-monitor", 2, 21900}, {"sku-cable", 4, 899}, {"sku-dock", 1, 14900}, {"sku-mouse", 2, 2500}}},
	{id: "o-5", customer: "acme", status: statusDelivered, placedAt: placed(5),
		items: []item{{"sku-stapler", 1, 1599}, {"sku-pen", 20, 120}}},
	{id: "o-6", customer: "globex", status: statusPlaced, placedAt: placed(6), tags: []string{"gift"},
		items: []item{{"sku-laptop", 1, 129900}, {"sku-bag", 1, 4900}, {"sku-mouse", 1, 2500}}},
}

// Seeded is one difference between the candidate's answers and the legacy's
// that the candidate has on purpose.
type Seeded struct {
	// Method is the method's short name: "GetOrder", "ListOrders",
	// "CancelOrder".
	Method string
	// Request is the order id (GetOrder, CancelOrder) or the customer
	// (ListOrders) whose answer differs; "" means every answer carrying an
	// Order.
	Request string
	// Path is where: a top-level field of the answered message ("$.total";
	// of each streamed Order for ListOrders), each side decoded with its own
	// version's descriptors, or "grpc-status".
	Path string
	// Kind is "added" (only the candidate has the path), "removed" (only the
	// legacy has it), "changed", or "status" (the gRPC statuses differ).
	Kind string
	// HiddenBy is a compare.unorderedArrays entry under which this is no
	// difference at all; "" when it is one under any rule.
	HiddenBy string
	// What says what differs, for people.
	What string
}

// SeededDifferences are all the differences between the candidate's and the
// legacy's answers; every other answer is identical.
var SeededDifferences = []Seeded{
	{Method: "GetOrder", Path: "$.total_cents", Kind: "removed",
		What: "candidate renamed field 5 total_cents to total: same wire bytes, different name"},
	{Method: "GetOrder", Path: "$.total", Kind: "added",
		What: "candidate renamed field 5 total_cents to total: same wire bytes, different name"},
	{Method: "ListOrders", Path: "$.total_cents", Kind: "removed",
		What: "candidate renamed field 5 total_cents to total: same wire bytes, different name"},
	{Method: "ListOrders", Path: "$.total", Kind: "added",
		What: "candidate renamed field 5 total_cents to total: same wire bytes, different name"},
	{Method: "GetOrder", Request: "o-2", Path: "$.status", Kind: "changed",
		What: "order o-2: legacy SHIPPED, candidate IN_TRANSIT (a value only its enum has)"},
	{Method: "ListOrders", Request: "acme", Path: "$.status", Kind: "changed",
		What: "order o-2 of acme: legacy SHIPPED, candidate IN_TRANSIT (a value only its enum has)"},
	{Method: "GetOrder", Path: "$.items", Kind: "changed", HiddenBy: "$.items by sku",
		What: "candidate lists the items in reverse order"},
	{Method: "ListOrders", Path: "$.items", Kind: "changed", HiddenBy: "$.items by sku",
		What: "candidate lists the items in reverse order"},
	{Method: "CancelOrder", Request: "o-2", Path: "grpc-status", Kind: "status",
		What: `shipped order o-2: legacy OK {cancelled: false, reason: "already shipped"}, candidate FAILED_PRECONDITION "order o-2 already shipped"`},
}

// view returns o as version answers it: the candidate answers IN_TRANSIT
// for SHIPPED and lists the items in reverse order.
func view(o order, version string) order {
	if version != VersionCandidate {
		return o
	}
	if o.status == statusShipped {
		o.status = statusInTransit
	}
	o.items = slices.Clone(o.items)
	slices.Reverse(o.items)
	return o
}

// getOrder answers GetOrder for id.
func getOrder(version, id string) (order, error) {
	if id == "" {
		return order{}, status.Error(codes.InvalidArgument, "id is required")
	}
	for _, o := range orders {
		if o.id == id {
			return view(o, version), nil
		}
	}
	return order{}, status.Errorf(codes.NotFound, "order %q not found", id)
}

// listOrders answers ListOrders for customer: its orders in id order, none
// for an unknown customer.
func listOrders(version, customer string) ([]order, error) {
	if customer == "" {
		return nil, status.Error(codes.InvalidArgument, "customer is required")
	}
	var out []order
	for _, o := range orders {
		if o.customer == customer {
			out = append(out, view(o, version))
		}
	}
	return out, nil
}

// cancellation is a CancelOrderResponse.
type cancellation struct {
	cancelled bool
	reason    string
}

// cancelOrder answers CancelOrder for id. It changes nothing: an order that
// is only placed is reported cancelled every time.
func cancelOrder(version, id string) (cancellation, error) {
	o, err := getOrder(VersionLegacy, id)
	if err != nil {
		return cancellation{}, err
	}
	switch o.status {
	case statusShipped:
		if version == VersionCandidate {
			return cancellation{}, status.Errorf(codes.FailedPrecondition, "order %s already shipped", id)
		}
		return cancellation{reason: "already shipped"}, nil
	case statusDelivered:
		return cancellation{reason: "already delivered"}, nil
	default:
		return cancellation{cancelled: true}, nil
	}
}
