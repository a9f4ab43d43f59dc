package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/shadowlab/shadowlab/grpcmsg"
)

// MaxDescriptorSetBytes bounds a service's descriptor set file.
const MaxDescriptorSetBytes = 64 << 20

// grpcMatch checks match.grpc: a fully qualified service ("shop.v1.Orders")
// or method ("shop.v1.Orders/GetOrder"), as gRPC writes them in the
// request path.
func (c *checker) grpcMatch(path, s string) bool {
	service, method, hasMethod := strings.Cut(s, "/")
	for _, part := range strings.Split(service, ".") {
		if !protoIdent(part) {
			c.add(path, "must be a gRPC service (package.Service) or method (package.Service/Method) without a leading \"/\" (got %q)", clip(s))
			return false
		}
	}
	if hasMethod && !protoIdent(method) {
		c.add(path, "method %q is not a proto identifier (got %q)", clip(method), clip(s))
		return false
	}
	return true
}

// protoIdent reports whether s is a proto identifier: a letter or '_',
// then letters, digits and '_'.
func protoIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && r >= '0' && r <= '9':
		default:
			return false
		}
	}
	return true
}

// grpc checks a service's grpc block: exactly one source of descriptors; a
// descriptor set is read now, whole, so that a missing or broken file is
// refused with the policy rather than found by the first pair. A gRPC
// service speaks HTTP/2.
func (c *checker) grpc(svcPath string, g *docGRPC, svc *Service) *GRPC {
	path := fieldPath(svcPath, "grpc")
	out := &GRPC{Descriptors: g.Descriptors, Reflection: g.Reflection}
	switch {
	case g.Descriptors == "" && !g.Reflection:
		c.add(path, "needs descriptors (a FileDescriptorSet file) or reflection: true to decode the service's messages")
	case g.Descriptors != "" && g.Reflection:
		c.add(path, "descriptors and reflection are exclusive: the messages are decoded with one of them")
	case g.Descriptors != "":
		out.Files, out.DescriptorsHash = c.descriptorSet(fieldPath(path, "descriptors"), g.Descriptors)
	}
	switch svc.Protocol {
	case ProtocolHTTP1:
		c.add(fieldPath(svcPath, "protocol"), "gRPC needs HTTP/2: write protocol: %s (or leave it out)", ProtocolHTTP2)
	default:
		svc.Protocol = ProtocolHTTP2
	}
	return out
}

// descriptorSet reads a FileDescriptorSet file and builds its descriptors.
func (c *checker) descriptorSet(path, file string) (*grpcmsg.Files, string) {
	st, err := os.Stat(file)
	switch {
	case err != nil:
		c.add(path, "cannot read the descriptor set: %v", err)
		return nil, ""
	case st.Size() > MaxDescriptorSetBytes:
		c.add(path, "descriptor set %q is %d bytes, over the limit of %d", clip(file), st.Size(), MaxDescriptorSetBytes)
		return nil, ""
	}
	b, err := os.ReadFile(file)
	if err != nil {
		c.add(path, "cannot read the descriptor set: %v", err)
		return nil, ""
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		c.add(path, "%q is not a FileDescriptorSet (write one with protoc --include_imports --descriptor_set_out, or buf build -o): %v", clip(file), err)
		return nil, ""
	}
	files, err := grpcmsg.NewFiles(&set)
	if err != nil {
		c.add(path, "descriptor set %q: %v", clip(file), err)
		return nil, ""
	}
	sum := sha256.Sum256(b)
	return files, hex.EncodeToString(sum[:])
}
