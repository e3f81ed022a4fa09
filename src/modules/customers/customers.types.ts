export interface Customer {
  id: string;
  tenantId: string;
  key: string;
  name: string;
  subjects: string[];
  metadata: Record<string, string>;
  createdAt: number;
  updatedAt: number;
}
