//! DNS switching for failovers: RFC 2136 dynamic update with TSIG, and the ExternalDNS
//! webhook protocol. (Slice in progress.)
