-- 007_money: a call's cost to the provider's precision (issue 14).
--
-- cost_cents rounds to whole cents; a VoIP.ms call record's total is
-- written to four or more decimals (0.0150), which rounding loses.  cost
-- keeps the decimal exactly as written (unconstrained numeric keeps its
-- scale), with its currency.
ALTER TABLE calls ADD COLUMN cost numeric CHECK (cost >= 0);
ALTER TABLE calls ADD COLUMN cost_currency text
    CHECK (cost_currency ~ '^[A-Z]{3}$');
