// Package grpcmsg turns the response bodies of mirrored gRPC calls into
// JSON text, so that the primary's and the shadow's answers are compared
// field by field by package compare, with the same rules (ignored paths,
// tolerances, unordered arrays, learned noise) as JSON APIs, rather than
// as opaque bytes where any difference is the whole body.
//
// A gRPC body is a sequence of length-prefixed messages, each perhaps
// compressed: Frames takes it apart. What the messages mean comes from
// the method's descriptors, found by a Resolver: Files reads them from a
// FileDescriptorSet (protoc --include_imports --descriptor_set_out, buf
// build -o), Reflection asks the service's gRPC server reflection and
// keeps what it learns. Decode then writes a unary answer as its
// message's JSON object and a server stream as the array of its
// messages' objects, in protobuf's JSON mapping with field names as the
// .proto writes them.
//
// Each side is decoded with its own service's descriptors, so each side's
// JSON is what its own service would produce. A field renamed in the
// candidate's proto shows as one removed and one added even though its
// number, and so its bytes, did not change: the rename is a difference
// for every client that reads the JSON form (transcoding, grpc-gateway)
// or the generated code's names. One set of descriptors for both sides
// would hide it.
//
// A message with fields its descriptor does not declare is not turned into
// JSON that silently lacks them: Decode reports *UnknownFieldsError (the
// descriptor is older than the service), and the caller compares the
// messages' bytes instead.
package grpcmsg
