rule all:
    input: "reference.fa"
