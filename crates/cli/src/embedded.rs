//! Options shared by the commands that run embedded clusters (`mooring cluster start`,
//! `mooring up`), so both spell and check them the same way. The semantics live in
//! `mooring_apiserver::sim::loadbalancer`.

use mooring_apiserver::sim::{AddressRange, LoadBalancerAddresses};

/// Where the embedded cluster's LoadBalancer Services and Ingresses get their address.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LoadBalancerArgs {
    /// Addresses for LoadBalancer Services, as a CIDR (its host addresses) or FIRST-LAST;
    /// the first address is shared by every Ingress (as ingress-nginx behind one load
    /// balancer). Default: 127.0.100.0/24 (127.0.100.1 for Ingresses, .2–.254 for
    /// Services). Annotate a Service or Ingress `sim.mooring.dev/load-balancer: pending`
    /// to keep it without an address.
    #[arg(long, value_name = "CIDR|FIRST-LAST")]
    pub load_balancer_range: Option<AddressRange>,
    /// Give every LoadBalancer Service and Ingress this hostname instead of an IP.
    #[arg(
        long,
        value_name = "HOSTNAME",
        conflicts_with = "load_balancer_range",
        value_parser = parse_hostname
    )]
    pub load_balancer_hostname: Option<LoadBalancerAddresses>,
}

fn parse_hostname(s: &str) -> Result<LoadBalancerAddresses, String> {
    LoadBalancerAddresses::hostname(s).map_err(|e| e.to_string())
}

impl LoadBalancerArgs {
    /// The setting of the `index`th extra cluster of `mooring up --clusters`: its own
    /// range when the default is in use (`127.0.101.0/24`, `127.0.102.0/24`, …: embedded
    /// load balancers listen on their addresses, so two clusters must not share them);
    /// what was given otherwise (a hostname is shared on purpose; a given range is the
    /// user's choice, and a collision is reported by the cluster as `ListenFailed`).
    pub fn fleet_addresses(&self, index: usize) -> LoadBalancerAddresses {
        match (&self.load_balancer_hostname, &self.load_balancer_range) {
            (None, None) => format!("127.0.{}.0/24", 101 + index.min(150))
                .parse()
                .map(LoadBalancerAddresses::Range)
                .unwrap_or_default(),
            _ => self.addresses(),
        }
    }

    /// The simulation's setting.
    pub fn addresses(&self) -> LoadBalancerAddresses {
        match (&self.load_balancer_hostname, &self.load_balancer_range) {
            (Some(h), _) => h.clone(),
            (None, Some(r)) => LoadBalancerAddresses::Range(r.clone()),
            (None, None) => LoadBalancerAddresses::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        lb: LoadBalancerArgs,
    }

    fn parse(args: &[&str]) -> Result<LoadBalancerAddresses, String> {
        Cli::try_parse_from(std::iter::once("mooring").chain(args.iter().copied()))
            .map(|c| c.lb.addresses())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn flags_choose_the_addresses() {
        assert_eq!(parse(&[]), Ok(LoadBalancerAddresses::default()));
        assert_eq!(
            parse(&["--load-balancer-range", "127.0.7.10-127.0.7.20"]),
            Ok(LoadBalancerAddresses::Range(
                "127.0.7.10-127.0.7.20".parse().expect("range")
            ))
        );
        assert_eq!(
            parse(&["--load-balancer-hostname", "localhost"]),
            Ok(LoadBalancerAddresses::Hostname("localhost".into()))
        );
    }

    #[test]
    fn bad_flags_are_clear_errors() {
        let e = parse(&["--load-balancer-range", "127.0.100.0/40"]).expect_err("bad prefix");
        assert!(
            e.contains("127.0.100.0/40") && e.contains("prefix length"),
            "{e}"
        );
        let e = parse(&["--load-balancer-range", "localhost"]).expect_err("not a range");
        assert!(e.contains("expected a CIDR"), "{e}");
        let e = parse(&["--load-balancer-hostname", "Not A Host"]).expect_err("bad host");
        assert!(e.contains("DNS-1123"), "{e}");
        let e = parse(&[
            "--load-balancer-range",
            "127.0.7.0/24",
            "--load-balancer-hostname",
            "localhost",
        ])
        .expect_err("both");
        assert!(e.contains("cannot be used with"), "{e}");
    }
}
