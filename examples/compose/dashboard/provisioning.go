package main

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Grafana's provisioning, as the compose file mounts it: the data source
// the dashboard's ${datasource} defaults to, and a provider loading the
// dashboards directory.
const (
	prometheusURL = "http://127.0.0.1:19090"
	prometheusUID = "prometheus"
	dashboardsDir = "/var/lib/grafana/dashboards"
)

type datasources struct {
	APIVersion  int                `yaml:"apiVersion"`
	Datasources []datasourceConfig `yaml:"datasources"`
}

type datasourceConfig struct {
	Name      string `yaml:"name"`
	Type      string `yaml:"type"`
	UID       string `yaml:"uid"`
	Access    string `yaml:"access"`
	URL       string `yaml:"url"`
	IsDefault bool   `yaml:"isDefault"`
	Editable  bool   `yaml:"editable"`
}

type providers struct {
	APIVersion int        `yaml:"apiVersion"`
	Providers  []provider `yaml:"providers"`
}

type provider struct {
	Name            string          `yaml:"name"`
	Type            string          `yaml:"type"`
	DisableDeletion bool            `yaml:"disableDeletion"`
	AllowUIUpdates  bool            `yaml:"allowUiUpdates"`
	Options         providerOptions `yaml:"options"`
}

type providerOptions struct {
	Path string `yaml:"path"`
}

func datasourceYAML() ([]byte, error) {
	return provisioningYAML(datasources{APIVersion: 1, Datasources: []datasourceConfig{{
		Name: "Prometheus", Type: "prometheus", UID: prometheusUID, Access: "proxy", URL: prometheusURL, IsDefault: true,
	}}})
}

func providerYAML() ([]byte, error) {
	return provisioningYAML(providers{APIVersion: 1, Providers: []provider{{
		Name: "shadowlab", Type: "file", DisableDeletion: true, Options: providerOptions{Path: dashboardsDir},
	}}})
}

func provisioningYAML(v any) ([]byte, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Grafana provisioning for the compose demo.\n# %s\n", generatedBy)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
