// Package grpcbackend is the example gRPC service that shadowlab's demo and
// tests run twice: as "legacy" (the primary) and as "candidate" (the
// shadow), to show gRPC answers compared field by field.
//
// It serves shop.v1.Orders (ProtoFile, embedded in two versions under
// proto/<version>/ and compiled at start; there is no generated code):
//
//	rpc GetOrder(GetOrderRequest) returns (Order);            // unary
//	rpc ListOrders(ListOrdersRequest) returns (stream Order);  // every order of a customer, in id order
//	rpc CancelOrder(CancelOrderRequest) returns (CancelOrderResponse); // not idempotent
//
// from a fixed data set of six orders, o-1 to o-6 (acme: o-1 PLACED, o-2
// SHIPPED, o-5 DELIVERED; globex: o-3 DELIVERED, o-4 PLACED, o-6 PLACED), two
// to four items each. Both versions answer NOT_FOUND `order "<id>" not
// found` for an unknown id and INVALID_ARGUMENT for an empty id or customer;
// ListOrders of an unknown customer streams no order. CancelOrder changes
// nothing: a PLACED order answers {cancelled: true} every time, a DELIVERED
// one {cancelled: false, reason: "already delivered"}.
//
// The candidate differs from the legacy on purpose in exactly these ways
// (SeededDifferences lists them as values):
//
//  1. Renamed field: the candidate's proto names Order field 5 "total"
//     instead of "total_cents" (same number and type). The bytes on the wire
//     are identical, so only a comparison that decodes each side with its own
//     version's descriptors sees $.total_cents removed and $.total added, in
//     every Order of GetOrder and ListOrders.
//  2. Enum value changed: the candidate's OrderStatus adds IN_TRANSIT = 4 and
//     answers it for SHIPPED orders, i.e. o-2: $.status changes on GetOrder
//     o-2 and on ListOrders of acme.
//  3. Repeated field reordered: the candidate lists an Order's items in
//     reverse order. $.items changes in every Order, unless the comparison
//     rule "unorderedArrays: $.items by sku" applies; then nothing does.
//  4. Different status: CancelOrder of the shipped order o-2 answers OK
//     {cancelled: false, reason: "already shipped"} in the legacy and
//     FAILED_PRECONDITION "order o-2 already shipped" in the candidate.
//
// A Server records every call it receives, faulted ones included (Received),
// can be made to fail (SetFault), serves gRPC server reflection v1 and
// v1alpha with its own version's descriptors, and answers gzip-compressed to
// clients that ask for it. A Client calls it with dynamic messages and
// returns the answers as JSON.
package grpcbackend

// The versions of the service.
const (
	VersionLegacy    = "legacy"
	VersionCandidate = "candidate"
)

// Names of the service, its proto file and its methods.
const (
	// ProtoFile is the path of the service's proto file in both versions.
	ProtoFile = "shop/v1/orders.proto"
	// ServiceName is the service's full name.
	ServiceName = "shop.v1.Orders"

	// Full method names, as a grpc.ClientConn.Invoke takes them.
	MethodGetOrder    = "/" + ServiceName + "/GetOrder"
	MethodListOrders  = "/" + ServiceName + "/ListOrders"
	MethodCancelOrder = "/" + ServiceName + "/CancelOrder"
)
