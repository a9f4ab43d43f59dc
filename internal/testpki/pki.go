// Package testpki writes throwaway certificate authorities for tests of TLS
// upstreams: the gateway's unit tests and the end-to-end tests.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// PKI is a throwaway certificate authority written into a directory: a CA
// file, a client certificate and key for mutual TLS, and a server
// configuration for ServerName that requires clients signed by the CA.
type PKI struct {
	CA, ClientCert, ClientKey string // files
	ServerName                string
	Server                    *tls.Config
}

// New writes a fresh PKI for serverName into dir (ca.pem, client.pem,
// client.key), valid for a day.
func New(dir, serverName string) (*PKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	notBefore, notAfter := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shadowlab test CA"}, IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, NotBefore: notBefore, NotAfter: notAfter}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	issue := func(serial int64, usage x509.ExtKeyUsage, names ...string) ([]byte, *ecdsa.PrivateKey, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "shadowlab test"}, DNSNames: names,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, NotBefore: notBefore, NotAfter: notAfter}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		return der, key, err
	}
	p := &PKI{CA: filepath.Join(dir, "ca.pem"), ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client.key"), ServerName: serverName}
	clientDER, clientKey, err := issue(2, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		return nil, err
	}
	for path, block := range map[string]*pem.Block{
		p.CA: {Type: "CERTIFICATE", Bytes: caDER}, p.ClientCert: {Type: "CERTIFICATE", Bytes: clientDER}, p.ClientKey: {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
	}
	serverDER, serverKey, err := issue(3, x509.ExtKeyUsageServerAuth, serverName)
	if err != nil {
		return nil, err
	}
	clients := x509.NewCertPool()
	clients.AddCert(caCert)
	p.Server = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clients,
	}
	return p, nil
}
