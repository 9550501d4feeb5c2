use super::*;

/// The largest connection ID the extension can carry (its length is one byte).
pub const MAX_CONNECTION_ID_LENGTH: usize = 255;

/// The `connection_id` extension (RFC 9146 §3): the connection ID the sender wants to *receive* in the
/// records the other side sends it; empty means "send me records without one" (the sender may still use the
/// peer's). coap-harness fork (FORK.md change 13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionConnectionId {
    pub cid: Vec<u8>,
}

impl ExtensionConnectionId {
    pub fn extension_value(&self) -> ExtensionValue {
        ExtensionValue::ConnectionId
    }

    pub fn size(&self) -> usize {
        2 + 1 + self.cid.len()
    }

    pub fn marshal<W: Write>(&self, writer: &mut W) -> Result<()> {
        if self.cid.len() > MAX_CONNECTION_ID_LENGTH {
            return Err(Error::ErrInvalidConnectionId);
        }
        writer.write_u16::<BigEndian>(1 + self.cid.len() as u16)?;
        writer.write_u8(self.cid.len() as u8)?;
        writer.write_all(&self.cid)?;
        Ok(writer.flush()?)
    }

    pub fn unmarshal<R: Read>(reader: &mut R) -> Result<Self> {
        let len = reader.read_u16::<BigEndian>()? as usize;
        let cid_len = reader.read_u8()? as usize;
        if len != 1 + cid_len {
            return Err(Error::ErrInvalidConnectionId);
        }
        let mut cid = vec![0u8; cid_len];
        reader.read_exact(&mut cid)?;
        Ok(ExtensionConnectionId { cid })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, BufWriter};

    use super::*;

    #[test]
    fn connection_id_round_trip_and_rejects_a_bad_length() -> Result<()> {
        let ext = Extension::ConnectionId(ExtensionConnectionId { cid: vec![1, 2, 3] });
        let mut raw = vec![];
        {
            let mut w = BufWriter::new(&mut raw);
            ext.marshal(&mut w)?;
        }
        assert_eq!(raw, vec![0x00, 0x36, 0x00, 0x04, 0x03, 1, 2, 3]);
        assert_eq!(ext.size(), raw.len());
        let back = Extension::unmarshal(&mut BufReader::new(raw.as_slice()))?;
        assert_eq!(back, ext);
        // An empty CID is legal: "send me records without one".
        let empty = [0x00, 0x36, 0x00, 0x01, 0x00];
        assert_eq!(
            Extension::unmarshal(&mut BufReader::new(&empty[..]))?,
            Extension::ConnectionId(ExtensionConnectionId { cid: vec![] })
        );
        // The extension length disagrees with the CID length.
        let bad = [0x00, 0x36, 0x00, 0x03, 0x03, 1, 2, 3];
        assert!(Extension::unmarshal(&mut BufReader::new(&bad[..])).is_err());
        Ok(())
    }
}
