// Replaces github.com/go-acme/lego/v5/providers/dns/zz_gen_dns_providers.go when cluster/build.sh
// builds Traefik: the release's list links in every DNS provider's SDK, a dozen of which the
// Go module proxy does not serve. The cluster's ingress gets no certificates from ACME.
package dns

import (
	"fmt"

	"github.com/go-acme/lego/v5/challenge"
)

// NewDNSChallengeProviderByName answers that no DNS-01 provider is built in.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return nil, fmt.Errorf("DNS-01 challenge provider %q: this build of Traefik has none", name)
}
