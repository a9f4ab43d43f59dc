package pair

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shadowlab/shadowlab/compare"
	"github.com/shadowlab/shadowlab/grpcmsg"
	"github.com/shadowlab/shadowlab/policy"
)

// gRPC pairs are compared as JSON: each side's messages are decoded with
// its own service's descriptors (a field the candidate renamed is a
// difference even when its number, and so its bytes, did not change) and
// turned into the JSON form protobuf defines, field names as in the proto;
// a unary answer is its message, a server stream the array of its
// messages. The status (grpc-status) is compared as HTTP's status is.
// When a side's messages cannot be decoded (no descriptors, unknown
// fields, bytes that do not parse) both sides are compared as their raw
// messages: equal bytes are a match, different ones an undecodable
// difference whose excerpts say why per side.

// grpcResolveTimeout bounds finding a method's descriptors for one pair
// (a reflection lookup; a failed one is cached, so the next pairs do not
// wait).
const grpcResolveTimeout = 3 * time.Second

// grpcRoute is how a route's two sides are decoded when they answer gRPC;
// a nil resolver means that side's service declares no descriptors.
type grpcRoute struct {
	primary, shadow grpcmsg.Resolver
}

// reflections are the server-reflection clients of the gRPC services of
// the policy in use, one per service as compiled (endpoints, TLS).
type reflections struct {
	mu   sync.Mutex
	byID map[string]*grpcmsg.Reflection
}

// resolver returns what decodes svc's messages, marking the reflection
// client it uses in used; retire then closes the clients no route uses.
func (rs *reflections) resolver(svc *policy.Service, used map[string]bool) grpcmsg.Resolver {
	switch {
	case svc == nil || svc.GRPC == nil:
		return nil
	case svc.GRPC.Files != nil:
		return svc.GRPC.Files
	}
	id := fmt.Sprint(svc.Endpoints, svc.TLS)
	used[id] = true
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r, ok := rs.byID[id]; ok {
		return r
	}
	creds := insecure.NewCredentials()
	if svc.TLS != nil {
		c, err := svc.TLS.ClientConfig()
		if err != nil {
			return failing{fmt.Errorf("service %s: %w", svc.Name, err)}
		}
		creds = credentials.NewTLS(c)
	}
	r, err := grpcmsg.NewReflection(svc.Endpoints[0], creds, grpcmsg.ReflectionOptions{})
	if err != nil {
		return failing{fmt.Errorf("service %s: reflection: %w", svc.Name, err)}
	}
	if rs.byID == nil {
		rs.byID = map[string]*grpcmsg.Reflection{}
	}
	rs.byID[id] = r
	return r
}

// retire closes the clients of services no longer used.
func (rs *reflections) retire(used map[string]bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for id, r := range rs.byID {
		if !used[id] {
			_ = r.Close()
			delete(rs.byID, id)
		}
	}
}

// failing is a resolver that cannot resolve: the service's TLS files went
// bad after the policy was checked.
type failing struct{ err error }

func (f failing) Method(context.Context, string) (protoreflect.MethodDescriptor, error) {
	return nil, f.err
}

// isGRPC reports whether a pair is a gRPC exchange: either answer says so.
func isGRPC(primary, shadow *compare.Response) bool {
	return grpcmsg.IsGRPC(primary.Headers["content-type"]) || grpcmsg.IsGRPC(shadow.Headers["content-type"])
}

// grpcSide is one side's answer taken apart: status, messages, and what
// went wrong decoding them.
type grpcSide struct {
	res  compare.Response
	msgs [][]byte
	json []byte
	err  error
}

// asJSON turns a gRPC pair into the two responses the comparator reads.
// When the messages were compared as bytes, undecoded is the difference
// that stands for a body difference (nil otherwise).
func (g grpcRoute) asJSON(ctx context.Context, method string, primary, shadow compare.Response, limit int) (p, s compare.Response, undecoded *compare.Difference) {
	ps := decodeSide(ctx, g.primary, method, primary, limit)
	ss := decodeSide(ctx, g.shadow, method, shadow, limit)
	if ps.err == nil && ss.err == nil {
		return ps.withBody(ps.json, "application/json"), ss.withBody(ss.json, "application/json"), nil
	}
	undecoded = &compare.Difference{Path: "body", Pattern: "body", Kind: compare.Undecodable,
		Primary: ps.why(), Shadow: ss.why()}
	return ps.withBody(bytes.Join(ps.msgs, nil), "application/grpc"), ss.withBody(bytes.Join(ss.msgs, nil), "application/grpc"), undecoded
}

// explainBytes puts undecoded in place of the bytes difference of a pair
// whose messages were compared as bytes.
func explainBytes(ds []compare.Difference, undecoded *compare.Difference) []compare.Difference {
	if undecoded == nil {
		return ds
	}
	for i, d := range ds {
		if d.Path == "body" && d.Kind == compare.Body {
			ds[i] = *undecoded
		}
	}
	return ds
}

// why is the excerpt of a side in an undecodable difference.
func (s *grpcSide) why() string {
	if s.err == nil {
		return "(decodes)"
	}
	return compare.Excerpt(s.err.Error())
}

// errNoDescriptors: the side's service declares no grpc block.
var errNoDescriptors = errors.New("no descriptors (declare the service's grpc: descriptors or reflection)")

// decodeSide takes one gRPC answer apart. The status is read from the
// trailers, or from the headers of a trailers-only answer; an answer
// without one (cut short, or not gRPC at all) has status "".
func decodeSide(ctx context.Context, r grpcmsg.Resolver, method string, in compare.Response, limit int) grpcSide {
	out := grpcSide{res: compare.Response{Status: in.Status, Headers: make(map[string]string, len(in.Headers)+len(in.Trailers))}}
	for _, fields := range []map[string]string{in.Headers, in.Trailers} {
		for k, v := range fields {
			if k != "content-encoding" && k != "grpc-encoding" {
				out.res.Headers[k] = v
			}
		}
	}
	if st, ok := out.res.Headers["grpc-status"]; ok {
		out.res.GRPCStatus = grpcmsg.CodeName(st)
		out.res.GRPCMessage = out.res.Headers["grpc-message"]
	}
	out.msgs, out.err = grpcmsg.Frames(in.Body, in.Headers["grpc-encoding"], limit)
	if out.err != nil {
		return out
	}
	if out.res.GRPCStatus != "OK" && len(out.msgs) == 0 {
		return out // an error answer: its status is what is compared
	}
	if r == nil {
		out.err = errNoDescriptors
		return out
	}
	md, err := r.Method(ctx, method)
	if err != nil {
		out.err = err
		return out
	}
	out.json, out.err = grpcmsg.Decode(md, out.msgs)
	return out
}

// withBody is the side's response with body as its content.
func (s *grpcSide) withBody(body []byte, contentType string) compare.Response {
	r := s.res
	r.Body = body
	r.Headers["content-type"] = contentType
	return r
}
