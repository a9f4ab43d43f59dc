package grpcmsg

import "strings"

// codeNames are gRPC's status codes by number, as grpc-status carries
// them.
var codeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// CodeName names a grpc-status value ("14" is "UNAVAILABLE") so that
// differences read as gRPC's documentation does. A value that is not one
// of the 17 codes, written plainly in decimal, is returned trimmed, as is.
func CodeName(status string) string {
	s := strings.TrimSpace(status)
	switch {
	case len(s) == 1 && s[0] >= '0' && s[0] <= '9':
		return codeNames[s[0]-'0']
	case len(s) == 2 && s[0] == '1' && s[1] >= '0' && s[1] <= '6':
		return codeNames[10+s[1]-'0']
	}
	return s
}
