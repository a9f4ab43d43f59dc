// Package wire is the vocabulary that crosses the Envoy boundary: the
// header names shadowlab sets and reads, the gRPC metadata Envoy opens
// shadowlab's streams with, sides and scopes, the admission outcomes, the
// proxy-wasm plugin's configuration (encoded by the control plane, decoded
// by the plugin) and the plugin's report lines (encoded by the plugin,
// decoded by the control plane).
//
// Every producer and every consumer of these imports this package, so each
// contract is written once. It is standard library only and builds for
// GOOS=wasip1; it does not use encoding/json, whose reflection would add
// most of a megabyte to the plugin (see json.go).
package wire
