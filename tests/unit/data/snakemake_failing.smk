rule all:
    input: "c.txt"

rule a:
    output: "a.txt"
    shell: "echo a > {output}"

rule b:
    input: "a.txt"
    output: "b.txt"
    shell: "echo 'b: reference genome missing' >&2; exit 3"

rule c:
    input: "b.txt"
    output: "c.txt"
    shell: "cat {input} > {output}"
