package eif

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDescribeUnsigned(t *testing.T) {
	img, err := ParseFile(vectorPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Describe(img).JSON()
	if err != nil {
		t.Fatal(err)
	}
	// nitro-cli's describe-eif shape (serde_json pretty): EifDescribeInfo with the
	// measurements flattened under "Measurements", metadata fields from the v4 section;
	// then attestd's "Kernel" (the vector's kernel section is random bytes: unknown).
	want := `{
  "EifVersion": 4,
  "Measurements": {
    "HashAlgorithm": "Sha384 { ... }",
    "PCR0": "` + vectorPCR0 + `",
    "PCR1": "` + vectorPCR1 + `",
    "PCR2": "` + vectorPCR2 + `"
  },
  "IsSigned": false,
  "CheckCRC": true,
  "ImageName": "synthetic",
  "ImageVersion": "1.0",
  "Metadata": {
    "BuildTime": "2024-01-01T00:00:00+00:00",
    "BuildTool": "eif_build",
    "BuildToolVersion": "0.0.0",
    "OperatingSystem": "OS",
    "KernelVersion": "kernel",
    "DockerInfo": null
  },
  "Kernel": {
    "Format": "unknown",
    "Release": ""
  }
}
`
	if string(got) != want {
		t.Errorf("describe:\n%s\nwant:\n%s", got, want)
	}
}

func TestDescribeSigned(t *testing.T) {
	in := vectorInput(t)
	in.Signer = vectorSigner(t)
	in.Metadata.CustomMetadata = json.RawMessage(`{"z":1,"a":"<b>"}`)
	out := describeBuilt(t, in)
	var d map[string]any
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatal(err)
	}
	if d["IsSigned"] != true || d["SignatureCheck"] != true || d["CheckCRC"] != true {
		t.Errorf("flags: %s", out)
	}
	if m := d["Measurements"].(map[string]any); m["PCR8"] != vectorPCR8 || m["PCR0"] != vectorPCR0 {
		t.Errorf("measurements: %v", m)
	}
	// Values as OpenSSL prints them (openssl x509 -text / -dates / -issuer).
	cert := d["SigningCertificate"].(map[string]any)
	issuer := cert["IssuerName"].(map[string]any)
	if issuer["commonName"] != "eif-signing-test" || issuer["countryName"] != "US" || issuer["organizationName"] != "Synthetic EIF test" || len(issuer) != 3 {
		t.Errorf("issuer: %v", issuer)
	}
	if cert["Algorithm"] != "ecdsa-with-SHA384" || cert["NotBefore"] != "Jan  1 00:00:00 2024 GMT" || cert["NotAfter"] != "Jan  1 00:00:00 2044 GMT" {
		t.Errorf("certificate: %v", cert)
	}
	const sig = "30:64:02:30:4D:8F:AD:93:BB:80:E3:E5:06:FE:7B:9C:00:53:0C:1F:52:9D:D1:62:81:8F:7D:5A:DC:B5:69:88:88:26:62:47:30:2D:D2:C5:D9:86:2E:4F:C8:24:D1:50:E5:3B:71:6B:02:30:1D:E6:AC:DE:A1:C2:16:42:8D:5A:F4:6F:1C:BD:92:8E:BA:47:F2:A8:96:1B:E9:EF:86:0F:2E:03:E8:4D:EF:BD:82:0A:EE:6C:EA:08:A2:35:22:66:D0:DF:C4:A8:6A:27"
	if cert["Signature"] != sig {
		t.Errorf("certificate signature: %v", cert["Signature"])
	}
	// CustomMetadata is flattened into Metadata (serde flatten), keys sorted, no HTML escaping.
	if !strings.Contains(string(out), `"DockerInfo": null,
    "a": "<b>",
    "z": 1
  }`) {
		t.Errorf("custom metadata not flattened:\n%s", out)
	}
}

func TestDescribedMetadataCustom(t *testing.T) {
	for custom, want := range map[string]string{
		``:                   `"DockerInfo":null}`,
		`null`:               `"DockerInfo":null}`,
		`{"b":[1,2],"a":{}}`: `"DockerInfo":null,"a":{},"b":[1,2]}`,
		`[1,2]`:              `"DockerInfo":null,"CustomMetadata":[1,2]}`,
		`"text"`:             `"DockerInfo":null,"CustomMetadata":"text"}`,
		`{"BuildTime":"x"}`:  `"DockerInfo":null,"CustomMetadata":{"BuildTime":"x"}}`,
	} {
		m := &DescribedMetadata{CustomMetadata: json.RawMessage(custom)}
		got, err := m.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(string(got), want) || !json.Valid(got) {
			t.Errorf("custom %q: %s, want suffix %s", custom, got, want)
		}
	}
}

func TestMetadataEncode(t *testing.T) {
	m := Metadata{
		ImageName:      "quote\" backslash\\ nl\n tab\t bell\x07 del\x7f é <&>",
		ImageVersion:   "1",
		DockerInfo:     json.RawMessage(`{ "Z": [1, 2.50, -3e2, true, null], "A": {"y": "\u00e9", "x": "\u2028"} }`),
		CustomMetadata: nil,
	}
	got, err := m.encode()
	if err != nil {
		t.Fatal(err)
	}
	// serde_json: short escapes for \" \\ \n \t, \u0007 for other controls, UTF-8 as is,
	// Value objects sorted by key, compact.
	want := `{"ImageName":"quote\" backslash\\ nl\n tab\t bell\u0007 del` + "\x7f" + ` é <&>","ImageVersion":"1",` +
		`"BuildMetadata":{"BuildTime":"","BuildTool":"","BuildToolVersion":"","OperatingSystem":"","KernelVersion":""},` +
		`"DockerInfo":{"A":{"x":"` + "\u2028" + `","y":"é"},"Z":[1,2.50,-3e2,true,null]},"CustomMetadata":null}`
	if string(got) != want {
		t.Errorf("encode:\n%s\nwant:\n%s", got, want)
	}
	back, err := ParseMetadata(got)
	if err != nil {
		t.Fatal(err)
	}
	if back.ImageName != m.ImageName {
		t.Errorf("round trip name %q", back.ImageName)
	}
}
