"""The mail room: a campaign's letters as one print file, in delivery order, with its count."""
