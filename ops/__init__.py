"""Operations: installing and running the relay stack locally."""
